/* Live curves of a training run in the admin: polls the run's metrics endpoint
 * (`<metrics_url>?after=<last id>`) every 2 s while the run is queued or running, keeps the
 * points by metric name and redraws small SVG line charts (no library, no build step).
 * When the run ends the page reloads once to show its artifacts and summary. */
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  var POLL_MS = 2000;
  var CHARTS = [
    { title: "Training loss (per step)", names: ["train/loss"], x: "step" },
    { title: "Validation accuracy (per epoch)", names: ["val/accuracy"], x: "epoch", y01: true },
    { title: "Loss per epoch", names: ["val/loss", "train/epoch_loss"], x: "epoch" },
  ];
  var COLOURS = ["#417690", "#c0392b", "#27ae60", "#8e44ad"];

  function el(name, attrs, parent) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs || {}).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    if (parent) parent.appendChild(node);
    return node;
  }

  function drawChart(chart, series) {
    var width = 360, height = 200, left = 44, right = 10, top = 10, bottom = 28;
    var box = document.createElement("div");
    box.className = "sp-chart";
    var heading = document.createElement("h3");
    heading.textContent = chart.title;
    box.appendChild(heading);
    var svg = el("svg", { width: width, height: height, role: "img", "aria-label": chart.title }, box);
    var points = [];
    chart.names.forEach(function (name) { (series[name] || []).forEach(function (p) { points.push(p); }); });
    if (!points.length) {
      el("text", { x: left, y: height / 2 }, svg).textContent = "no points yet";
      return box;
    }
    var xs = points.map(function (p) { return chart.x === "epoch" ? (p.epoch || 0) : p.step; });
    var ys = points.map(function (p) { return p.value; });
    var x0 = Math.min.apply(null, xs), x1 = Math.max.apply(null, xs);
    var y0 = chart.y01 ? 0 : Math.min.apply(null, ys), y1 = chart.y01 ? 1 : Math.max.apply(null, ys);
    if (x1 === x0) { x1 = x0 + 1; }
    if (y1 === y0) { y1 = y0 + 1; }
    function sx(v) { return left + (v - x0) / (x1 - x0) * (width - left - right); }
    function sy(v) { return top + (1 - (v - y0) / (y1 - y0)) * (height - top - bottom); }
    el("line", { x1: left, y1: height - bottom, x2: width - right, y2: height - bottom, "class": "axis" }, svg);
    el("line", { x1: left, y1: top, x2: left, y2: height - bottom, "class": "axis" }, svg);
    el("text", { x: 2, y: top + 8 }, svg).textContent = y1.toPrecision(3);
    el("text", { x: 2, y: height - bottom }, svg).textContent = y0.toPrecision(3);
    el("text", { x: left, y: height - 8 }, svg).textContent = chart.x + " " + x0;
    el("text", { x: width - right - 60, y: height - 8 }, svg).textContent = chart.x + " " + x1;
    chart.names.forEach(function (name, index) {
      var line = (series[name] || []).slice().sort(function (a, b) { return a.step - b.step; });
      if (!line.length) return;
      var path = line.map(function (p, i) {
        var x = chart.x === "epoch" ? (p.epoch || 0) : p.step;
        return (i ? "L" : "M") + sx(x).toFixed(1) + "," + sy(p.value).toFixed(1);
      }).join(" ");
      var colour = COLOURS[index % COLOURS.length];
      var shape = el("path", { d: path, "class": "line", stroke: colour }, svg);
      el("title", {}, shape).textContent = name;
      var last = line[line.length - 1];
      el("text", { x: left + 6, y: top + 12 + 13 * index, fill: colour }, svg).textContent =
        name + ": " + last.value.toFixed(4);
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
      ["by", "value", "accuracy", "epoch"].forEach(function (t) {
        var th = document.createElement("th"); th.textContent = t; head.appendChild(th);
      });
      body.appendChild(head);
      rows.forEach(function (r) {
        var tr = document.createElement("tr");
        [r[0], r[1], r[2].toFixed(3), r[3]].forEach(function (v) {
          var td = document.createElement("td"); td.textContent = v; tr.appendChild(td);
        });
        body.appendChild(tr);
      });
    }
    table.replaceChildren(body);
  }

  function start(panel) {
    var url = panel.getAttribute("data-metrics-url");
    var live = ["queued", "running"].indexOf(panel.getAttribute("data-status")) >= 0;
    var series = {}, seen = {}, after = 0;
    function field(name) { return panel.querySelector('[data-field="' + name + '"]'); }
    function redraw() {
      var charts = panel.querySelector("[data-charts]");
      charts.replaceChildren.apply(charts, CHARTS.map(function (c) { return drawChart(c, series); }));
      drawBreakdown(panel.querySelector("[data-breakdown]"), series);
    }
    function poll() {
      fetch(url + "?after=" + after, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) { return response.ok ? response.json() : Promise.reject(response.status); })
        .then(function (data) {
          data.points.forEach(function (p) {
            if (seen[p.id]) return;
            seen[p.id] = true;
            (series[p.name] = series[p.name] || []).push(p);
          });
          after = data.last_id;
          var run = data.run;
          field("status").textContent = run.status;
          field("step").textContent = run.step;
          field("total_steps").textContent = run.total_steps || "?";
          field("epoch").textContent = run.epoch;
          var bar = field("progress");
          bar.max = Math.max(run.total_steps, 1);
          bar.value = run.step;
          if (run.error) { field("error").textContent = run.error; field("error").style.display = ""; }
          redraw();
          var active = run.status === "queued" || run.status === "running";
          if (active) {
            window.setTimeout(poll, POLL_MS);
          } else if (live) {
            window.location.reload();
          }
        })
        .catch(function () { window.setTimeout(poll, POLL_MS * 3); });
    }
    poll();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var panel = document.getElementById("sp-training");
    if (panel) start(panel);
  });
})();
