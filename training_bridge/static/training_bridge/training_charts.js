/* Curves of a training run in the admin (no library, no build step).
 *
 * - Polls the run's metrics endpoint (`<metrics_url>?after=<last id>`) every 2 s while the run
 *   is queued or running, keeps the points by metric name and redraws SVG line charts; when
 *   the run ends the page reloads once to show its artifacts and summary.
 * - Hovering a chart shows, for the step (or epoch) under the pointer, each line's value there.
 * - Other runs can be overlaid: the "Overlay" list offers the runs of the same dataset version
 *   first, then any other run (GET /api/training-runs/); each overlaid run's points come from
 *   its own metrics endpoint and its lines take the run's colour.
 */
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  var POLL_MS = 2000;
  var WIDTH = 720, HEIGHT = 320, LEFT = 64, RIGHT = 16, TOP = 16, BOTTOM = 40;
  var CHARTS = [
    { title: "Training loss (per step)", names: ["train/loss"], x: "step" },
    { title: "Validation accuracy (per epoch)", names: ["val/accuracy"], x: "epoch", y01: true },
    { title: "Loss per epoch", names: ["val/loss", "train/epoch_loss"], x: "epoch" },
  ];
  // One colour per run (the page's own run first); a chart's second metric is dashed.
  var COLOURS = ["#417690", "#c0392b", "#27ae60", "#8e44ad", "#d35400", "#16a085", "#7f8c8d"];
  var DASHES = ["", "6 4", "2 3"];

  function el(name, attrs, parent) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs || {}).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    if (parent) parent.appendChild(node);
    return node;
  }

  function html(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function format(value) {
    if (!isFinite(value)) return String(value);
    var magnitude = Math.abs(value);
    return magnitude !== 0 && (magnitude < 1e-3 || magnitude >= 1e5)
      ? value.toExponential(3) : value.toFixed(4);
  }

  function niceTicks(low, high, count) {
    var span = high - low;
    var step = Math.pow(10, Math.floor(Math.log(span / count) / Math.LN10));
    [1, 2, 5, 10].some(function (m) { if (span / (step * m) <= count) { step *= m; return true; } return false; });
    var ticks = [];
    for (var v = Math.ceil(low / step) * step; v <= high + step * 1e-9; v += step) ticks.push(v);
    return ticks;
  }

  // The lines of a chart: one per (run, metric name) that has points, sorted by x.
  function chartLines(chart, runs) {
    var lines = [];
    runs.forEach(function (run) {
      chart.names.forEach(function (name, index) {
        var points = (run.series[name] || []).map(function (p) {
          return { x: chart.x === "epoch" ? (p.epoch || 0) : p.step, step: p.step, value: p.value };
        }).sort(function (a, b) { return a.x - b.x || a.step - b.step; });
        if (!points.length) return;
        lines.push({
          run: run, name: name, points: points, colour: COLOURS[run.colour % COLOURS.length],
          dash: DASHES[index % DASHES.length],
          label: (runs.length > 1 ? "run " + run.id + " " : "") + name,
        });
      });
    });
    return lines;
  }

  function nearest(points, x) {
    var best = points[0];
    points.forEach(function (p) { if (Math.abs(p.x - x) < Math.abs(best.x - x)) best = p; });
    return best;
  }

  function drawChart(chart, runs) {
    var box = html("div", { "class": "sp-chart", "data-chart": chart.names[0] });
    box.appendChild(html("h3", {}, chart.title));
    var frame = html("div", { "class": "sp-chart-frame" });
    box.appendChild(frame);
    var svg = el("svg", {
      viewBox: "0 0 " + WIDTH + " " + HEIGHT, role: "img", "aria-label": chart.title,
      preserveAspectRatio: "xMidYMid meet",
    }, frame);
    var lines = chartLines(chart, runs);
    if (!lines.length) {
      el("text", { x: LEFT, y: HEIGHT / 2 }, svg).textContent = "no points yet";
      return box;
    }
    var xs = [], ys = [];
    lines.forEach(function (line) {
      line.points.forEach(function (p) { xs.push(p.x); ys.push(p.value); });
    });
    var x0 = Math.min.apply(null, xs), x1 = Math.max.apply(null, xs);
    var y0 = chart.y01 ? 0 : Math.min.apply(null, ys), y1 = chart.y01 ? 1 : Math.max.apply(null, ys);
    if (x1 === x0) { x1 = x0 + 1; }
    if (y1 === y0) { y1 = y0 + 1; }
    function sx(v) { return LEFT + (v - x0) / (x1 - x0) * (WIDTH - LEFT - RIGHT); }
    function sy(v) { return TOP + (1 - (v - y0) / (y1 - y0)) * (HEIGHT - TOP - BOTTOM); }
    niceTicks(y0, y1, 5).forEach(function (v) {
      el("line", { x1: LEFT, y1: sy(v), x2: WIDTH - RIGHT, y2: sy(v), "class": "grid" }, svg);
      el("text", { x: LEFT - 6, y: sy(v) + 4, "text-anchor": "end" }, svg).textContent = format(v);
    });
    niceTicks(x0, x1, 8).filter(function (v) { return v === Math.round(v); }).forEach(function (v) {
      el("text", { x: sx(v), y: HEIGHT - BOTTOM + 16, "text-anchor": "middle" }, svg).textContent = v;
    });
    el("line", { x1: LEFT, y1: HEIGHT - BOTTOM, x2: WIDTH - RIGHT, y2: HEIGHT - BOTTOM, "class": "axis" }, svg);
    el("line", { x1: LEFT, y1: TOP, x2: LEFT, y2: HEIGHT - BOTTOM, "class": "axis" }, svg);
    el("text", { x: (LEFT + WIDTH - RIGHT) / 2, y: HEIGHT - 6, "text-anchor": "middle" }, svg).textContent = chart.x;
    var legend = html("ul", { "class": "sp-legend" });
    lines.forEach(function (line) {
      var d = line.points.map(function (p, i) {
        return (i ? "L" : "M") + sx(p.x).toFixed(1) + "," + sy(p.value).toFixed(1);
      }).join(" ");
      var attrs = { d: d, "class": "line", stroke: line.colour, "data-run": line.run.id, "data-name": line.name };
      if (line.dash) attrs["stroke-dasharray"] = line.dash;
      el("title", {}, el("path", attrs, svg)).textContent = line.label;
      var last = line.points[line.points.length - 1];
      var item = html("li", { "data-run": line.run.id, "data-name": line.name });
      item.appendChild(html("span", { "class": "sp-swatch", style: "background:" + line.colour }));
      item.appendChild(document.createTextNode(line.label + ": " + format(last.value) + " (last)"));
      legend.appendChild(item);
    });
    box.appendChild(legend);

    // Hover: a guide at the x under the pointer and each line's value at its nearest point.
    var guide = el("line", { y1: TOP, y2: HEIGHT - BOTTOM, "class": "guide", visibility: "hidden" }, svg);
    var dots = lines.map(function (line) {
      return el("circle", { r: 4, fill: line.colour, visibility: "hidden" }, svg);
    });
    var tip = html("div", { "class": "sp-tip", "data-tip": "", hidden: "" });
    frame.appendChild(tip);
    var plot = el("rect", {
      x: LEFT, y: TOP, width: WIDTH - LEFT - RIGHT, height: HEIGHT - TOP - BOTTOM,
      fill: "transparent", "class": "sp-hover",
    }, svg);
    plot.addEventListener("mousemove", function (event) {
      var bounds = svg.getBoundingClientRect();
      var scale = WIDTH / bounds.width;
      var px = (event.clientX - bounds.left) * scale;
      var x = x0 + (px - LEFT) / (WIDTH - LEFT - RIGHT) * (x1 - x0);
      var at = nearest(lines.reduce(function (all, l) { return all.concat(l.points); }, []), x).x;
      guide.setAttribute("x1", sx(at));
      guide.setAttribute("x2", sx(at));
      guide.setAttribute("visibility", "visible");
      tip.replaceChildren(html("strong", { "data-tip-x": at }, chart.x + " " + at));
      lines.forEach(function (line, i) {
        var p = nearest(line.points, at);
        if (p.x !== at) { dots[i].setAttribute("visibility", "hidden"); return; }
        dots[i].setAttribute("cx", sx(p.x));
        dots[i].setAttribute("cy", sy(p.value));
        dots[i].setAttribute("visibility", "visible");
        var row = html("div", { "data-run": line.run.id, "data-name": line.name, "data-value": p.value });
        row.appendChild(html("span", { "class": "sp-swatch", style: "background:" + line.colour }));
        row.appendChild(document.createTextNode(
          line.label + ": " + format(p.value) + (chart.x === "epoch" ? " (step " + p.step + ")" : "")
        ));
        tip.appendChild(row);
      });
      tip.hidden = false;
      var left = (sx(at) / scale) + 12;
      tip.style.left = (left + tip.offsetWidth > bounds.width ? left - tip.offsetWidth - 24 : left) + "px";
      tip.style.top = ((event.clientY - bounds.top) + 12) + "px";
    });
    plot.addEventListener("mouseleave", function () {
      tip.hidden = true;
      guide.setAttribute("visibility", "hidden");
      dots.forEach(function (dot) { dot.setAttribute("visibility", "hidden"); });
    });
    return box;
  }

  function drawBreakdown(table, series) {
    var rows = [];
    Object.keys(series).sort().forEach(function (name) {
      var match = /^val\/accuracy\/(relation|num_perturbations|config)\/(.+)$/.exec(name);
      if (!match) return;
      var line = series[name];
      var last = line.reduce(function (a, b) { return b.step > a.step ? b : a; });
      rows.push([match[1], match[2], last.value, last.epoch]);
    });
    var body = document.createElement("tbody");
    if (!rows.length) {
      body.innerHTML = "<tr><td>-</td></tr>";
    } else {
      var head = document.createElement("tr");
      ["by", "value", "accuracy", "epoch"].forEach(function (t) { head.appendChild(html("th", {}, t)); });
      body.appendChild(head);
      rows.forEach(function (r) {
        var tr = document.createElement("tr");
        [r[0], r[1], r[2].toFixed(3), r[3]].forEach(function (v) { tr.appendChild(html("td", {}, v)); });
        body.appendChild(tr);
      });
    }
    table.replaceChildren(body);
  }

  function getJson(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : Promise.reject(response.status); });
  }

  // One run's points: fetched page by page, then polled while the run is queued or running.
  function Source(id, metricsUrl, colour, onData) {
    this.id = id;
    this.colour = colour;
    this.series = {};
    this.seen = {};
    this.after = 0;
    this.url = metricsUrl;
    this.onData = onData;
    this.stopped = false;
  }
  Source.prototype.poll = function () {
    var self = this;
    if (self.stopped) return;
    getJson(self.url + "?after=" + self.after).then(function (data) {
      if (self.stopped) return;
      var fresh = 0;
      data.points.forEach(function (p) {
        if (self.seen[p.id]) return;
        self.seen[p.id] = true;
        fresh += 1;
        (self.series[p.name] = self.series[p.name] || []).push(p);
      });
      self.after = data.last_id;
      var active = data.run.status === "queued" || data.run.status === "running";
      self.onData(self, data.run, active, fresh);
      if (data.points.length) {
        self.poll(); // a page at most per answer: ask again until nothing is left
      } else if (active) {
        window.setTimeout(function () { self.poll(); }, POLL_MS);
      }
    }).catch(function () {
      window.setTimeout(function () { self.poll(); }, POLL_MS * 3);
    });
  };

  function runLabel(run) {
    var accuracy = run.summary && typeof run.summary["val/accuracy"] === "number"
      ? ", val acc " + run.summary["val/accuracy"].toFixed(3) : "";
    var config = run.config || {};
    var what = config.launcher && config.launcher !== "builtin" ? config.launcher
      : [config.backbone || "builtin", config.head || "scalar"].join("/");
    return "run " + run.id + ": " + run.dataset + " v" + run.version_number + ", " + what + ", " +
      run.status + accuracy;
  }

  function start(panel) {
    var runId = Number(panel.getAttribute("data-run-id"));
    var versionId = panel.getAttribute("data-version-id");
    var runsUrl = panel.getAttribute("data-runs-url");
    var live = ["queued", "running"].indexOf(panel.getAttribute("data-status")) >= 0;
    var chartsBox = panel.querySelector("[data-charts]");
    var sources = [];
    var colours = 0;
    function field(name) { return panel.querySelector('[data-field="' + name + '"]'); }
    function redraw() {
      chartsBox.replaceChildren.apply(chartsBox, CHARTS.map(function (c) { return drawChart(c, sources); }));
      drawBreakdown(panel.querySelector("[data-breakdown]"), sources[0].series);
    }
    var drawn = false;
    function own(source, run, active, fresh) {
      field("status").textContent = run.status;
      field("step").textContent = run.step;
      field("total_steps").textContent = run.total_steps || "?";
      field("epoch").textContent = run.epoch;
      var bar = field("progress");
      bar.max = Math.max(run.total_steps, 1);
      bar.value = run.step;
      if (run.error) { field("error").textContent = run.error; field("error").style.display = ""; }
      if (fresh || !drawn) redraw();  // not on an empty poll: a hovered chart keeps its tip
      drawn = true;
      if (!active && live) window.location.reload();
    }
    sources.push(new Source(runId, panel.getAttribute("data-metrics-url"), colours++, own));
    sources[0].poll();

    // Overlays
    var overlay = panel.querySelector("[data-overlay]");
    if (!overlay || !runsUrl) return;
    var select = overlay.querySelector("select");
    var chosen = overlay.querySelector("[data-overlay-chosen]");
    var known = {};
    function offer() {
      var shown = {};
      sources.forEach(function (s) { shown[s.id] = true; });
      var groups = [["Same dataset version", function (r) { return String(r.dataset_version) === versionId; }],
                    ["Other runs", function (r) { return String(r.dataset_version) !== versionId; }]];
      var first = html("option", { value: "" }, "Overlay another run…");
      select.replaceChildren(first);
      groups.forEach(function (group) {
        var runs = Object.keys(known).map(function (k) { return known[k]; })
          .filter(function (r) { return !shown[r.id] && group[1](r); })
          .sort(function (a, b) { return b.id - a.id; });
        if (!runs.length) return;
        var optgroup = html("optgroup", { label: group[0] });
        runs.forEach(function (r) { optgroup.appendChild(html("option", { value: r.id }, runLabel(r))); });
        select.appendChild(optgroup);
      });
      select.disabled = select.options.length <= 1;
    }
    function add(run) {
      var source = new Source(run.id, run.metrics_url, colours++, function (s, r, a, fresh) {
        if (fresh) redraw();
      });
      sources.push(source);
      var chip = html("li", { "data-overlay-run": run.id });
      chip.appendChild(html("span", { "class": "sp-swatch", style: "background:" + COLOURS[source.colour % COLOURS.length] }));
      chip.appendChild(document.createTextNode(runLabel(run) + " "));
      var remove = html("button", { type: "button", "aria-label": "Remove run " + run.id + " from the charts" }, "×");
      remove.addEventListener("click", function () {
        source.stopped = true;
        sources.splice(sources.indexOf(source), 1);
        chip.remove();
        offer();
        redraw();
      });
      chip.appendChild(remove);
      chosen.appendChild(chip);
      offer();
      source.poll();
    }
    select.addEventListener("change", function () {
      var run = known[select.value];
      select.value = "";
      if (run) add(run);
    });
    var sameVersion = runsUrl + "?dataset_version=" + encodeURIComponent(versionId);
    Promise.all([getJson(sameVersion), getJson(runsUrl)]).then(function (answers) {
      answers.forEach(function (runs) { runs.forEach(function (r) { known[r.id] = r; }); });
      offer();
    }).catch(function () {
      select.replaceChildren(html("option", { value: "" }, "could not list the runs"));
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var panel = document.getElementById("sp-training");
    if (panel) start(panel);
  });
})();
