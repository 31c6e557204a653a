"""A training run's page in Chromium (training_bridge/static/training_bridge/training_charts.js):
its charts follow a running run, show the value under the pointer, and other runs (those of the
same dataset version first, then any other run) can be overlaid and removed again.

    run        version  train/loss at step s (s = 1..20)   val/accuracy at epoch e (e = 1..4)
    own        A        (100 - 3 s) / 100                   0.50 + 0.05 e
    sibling    A        (90.5 - 2 s) / 100                  0.55 + 0.05 e
    stranger   B        (60.25 + s) / 100                   0.40 + 0.10 e

(no two losses are equal at a step, so a tip that showed another run's value would differ)
"""

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from tests.factories import DatasetFactory, DatasetVersionFactory, TrainingRunFactory
from tests.ui.conftest import sign_in
from training_bridge.models import TrainingMetric, TrainingRun
from training_bridge.training.selectors.training import METRICS_PAGE

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
STEPS = 20


def loss(run_name: str, step: int) -> float:
    return {"own": 100 - 3 * step, "sibling": 90.5 - 2 * step, "stranger": 60.25 + step}[
        run_name
    ] / 100


def accuracy(run_name: str, epoch: int) -> float:
    base, slope = {"own": (0.50, 0.05), "sibling": (0.55, 0.05), "stranger": (0.40, 0.10)}[run_name]
    return round(base + slope * epoch, 4)


def _run(name: str, version, tag: str):
    run = TrainingRunFactory(
        dataset_version=version, config={"backbone": "builtin", "head": "scalar", "tag": tag},
        config_hash=tag * 64, status="succeeded", step=STEPS, total_steps=STEPS, epoch=4,
        summary={"val/accuracy": accuracy(name, 4)}, finished_at=timezone.now(),
    )  # fmt: skip
    points = [
        TrainingMetric(run=run, name="train/loss", step=s, epoch=(s - 1) // 5 + 1,
                       value=loss(name, s))
        for s in range(1, STEPS + 1)
    ] + [
        TrainingMetric(run=run, name="val/accuracy", step=5 * e, epoch=e, value=accuracy(name, e))
        for e in range(1, 5)
    ]  # fmt: skip
    TrainingMetric.objects.bulk_create(points)
    return run


@pytest.fixture
def runs(db):
    dataset = DatasetFactory(name="spatial-prefs")
    version_a = DatasetVersionFactory(dataset=dataset, number=1)
    version_b = DatasetVersionFactory(dataset=dataset, number=2)
    return {
        "own": _run("own", version_a, "a"),
        "sibling": _run("sibling", version_a, "b"),
        "stranger": _run("stranger", version_b, "c"),
    }


def _open(page: Page, live_server, run) -> None:
    page.goto(f"{live_server.url}/admin/training_bridge/trainingrun/{run.pk}/change/")
    page.locator('[data-chart="train/loss"] path.line').first.wait_for()


def _hover(page: Page, chart: str, fraction: float) -> dict:
    """Hover the chart at `fraction` of its plot's width; the tip's x and its rows."""
    plot = page.locator(f'[data-chart="{chart}"] rect.sp-hover')
    box = plot.bounding_box()
    plot.hover(position={"x": box["width"] * fraction, "y": box["height"] / 2})
    tip = page.locator(f'[data-chart="{chart}"] [data-tip]')
    expect(tip).to_be_visible()
    x = int(tip.locator("[data-tip-x]").get_attribute("data-tip-x"))
    rows = {
        int(row.get_attribute("data-run")): row.inner_text().strip()
        for row in tip.locator("[data-run]").all()
    }
    return {"x": x, "rows": rows}


def test_hovering_a_chart_shows_the_value_of_each_line_at_that_step(
    live_server, context, ml_engineer, runs, artifacts
):
    # Given an ML engineer on a finished run's page
    sign_in(context, live_server, ml_engineer)
    page = context.new_page()
    own = runs["own"]
    _open(page, live_server, own)

    # When they hover the training loss a third of the way along, then near its end
    early = _hover(page, "train/loss", 1 / 3)
    late = _hover(page, "train/loss", 0.95)

    # Then the tip names the step under the pointer and the run's loss at that step
    # (the pointer maps to a step inside the run, and further right to a later one)
    assert 1 < early["x"] < late["x"] <= STEPS
    for seen in (early, late):
        assert seen["rows"] == {own.pk: f"train/loss: {loss('own', seen['x']):.4f}"}
    # And on the per-epoch chart, the epoch, its value and the step it was measured at
    epoch = _hover(page, "val/accuracy", 0.99)
    assert epoch["x"] == 4
    assert epoch["rows"] == {own.pk: f"val/accuracy: {accuracy('own', 4):.4f} (step 20)"}
    page.screenshot(path=str(artifacts / "run-page-hover.png"), full_page=True)


def _line_runs(page: Page, chart: str) -> list[int]:
    lines = page.locator(f'[data-chart="{chart}"] path.line').all()
    return [int(line.get_attribute("data-run")) for line in lines]


def _offered(page: Page) -> dict[str, list[int]]:
    groups = page.locator("[data-overlay] select optgroup").all()
    return {
        group.get_attribute("label"): [
            int(option.get_attribute("value")) for option in group.locator("option").all()
        ]
        for group in groups
    }


def test_other_runs_can_be_overlaid_on_the_charts_and_removed(
    live_server, context, ml_engineer, runs, artifacts
):
    own, sibling, stranger = runs["own"], runs["sibling"], runs["stranger"]
    sign_in(context, live_server, ml_engineer)
    page = context.new_page()
    _open(page, live_server, own)
    select = page.locator("[data-overlay] select")
    expect(select).to_be_enabled()

    # The list offers the same version's other run first, then the other version's, not itself
    assert _offered(page) == {"Same dataset version": [sibling.pk], "Other runs": [stranger.pk]}
    label = select.locator(f'option[value="{sibling.pk}"]').inner_text()
    assert label == f"run {sibling.pk}: spatial-prefs v1, builtin/scalar, succeeded, val acc 0.750"
    assert _line_runs(page, "train/loss") == [own.pk]

    # When they overlay the sibling run, then the run of the other version
    select.select_option(str(sibling.pk))
    expect(page.locator(f'path.line[data-run="{sibling.pk}"]')).to_have_count(2)
    select.select_option(str(stranger.pk))
    expect(page.locator(f'path.line[data-run="{stranger.pk}"]')).to_have_count(2)

    # Then both charts with points draw the three runs, the legend names them, and hovering
    # shows each run's value at the same step
    for chart in ("train/loss", "val/accuracy"):
        assert _line_runs(page, chart) == [own.pk, sibling.pk, stranger.pk]
    legend = page.locator('[data-chart="val/accuracy"] .sp-legend li')
    assert legend.all_inner_texts() == [
        f"run {own.pk} val/accuracy: {accuracy('own', 4):.4f} (last)",
        f"run {sibling.pk} val/accuracy: {accuracy('sibling', 4):.4f} (last)",
        f"run {stranger.pk} val/accuracy: {accuracy('stranger', 4):.4f} (last)",
    ]
    seen = _hover(page, "train/loss", 0.5)
    assert seen["rows"] == {
        run.pk: f"run {run.pk} train/loss: {loss(name, seen['x']):.4f}"
        for name, run in runs.items()
    }
    # And the overlaid runs are no longer offered
    assert _offered(page) == {}
    page.screenshot(path=str(artifacts / "run-page-overlay.png"), full_page=True)

    # When they remove the sibling run
    page.get_by_role("button", name=f"Remove run {sibling.pk} from the charts").click()

    # Then its lines are gone and it is offered again
    assert _line_runs(page, "train/loss") == [own.pk, stranger.pk]
    assert _offered(page) == {"Same dataset version": [sibling.pk]}


def test_a_running_runs_charts_grow_as_points_arrive_and_the_page_reloads_when_it_ends(
    live_server, context, ml_engineer, runs
):
    # Given a running run with the first five steps of its loss
    run = TrainingRunFactory(
        dataset_version=runs["own"].dataset_version, config={"backbone": "builtin"},
        config_hash="d" * 64, status="running", step=5, total_steps=STEPS, epoch=1,
    )  # fmt: skip
    TrainingMetric.objects.bulk_create(
        TrainingMetric(run=run, name="train/loss", step=s, epoch=1, value=loss("own", s))
        for s in range(1, 6)
    )
    sign_in(context, live_server, ml_engineer)
    page = context.new_page()
    _open(page, live_server, run)
    legend = page.locator('[data-chart="train/loss"] .sp-legend li')
    expect(legend).to_have_text(f"train/loss: {loss('own', 5):.4f} (last)")

    # When the worker stores five more steps
    TrainingMetric.objects.bulk_create(
        TrainingMetric(run=run, name="train/loss", step=s, epoch=2, value=loss("own", s))
        for s in range(6, 11)
    )
    TrainingRun.objects.filter(pk=run.pk).update(step=10, epoch=2)

    # Then the next poll draws them and moves the progress
    expect(legend).to_have_text(f"train/loss: {loss('own', 10):.4f} (last)")
    expect(page.locator('[data-field="step"]')).to_have_text("10")
    assert _hover(page, "train/loss", 0.99) == {
        "x": 10, "rows": {run.pk: f"train/loss: {loss('own', 10):.4f}"}
    }  # fmt: skip

    # When the run ends, the page reloads once and shows it finished, no longer live
    TrainingRun.objects.filter(pk=run.pk).update(status="succeeded", finished_at=timezone.now())
    expect(page.locator('[data-field="live"]')).to_have_text("")
    expect(page.locator("#sp-training")).to_have_attribute("data-status", "succeeded")


def test_a_finished_run_with_more_points_than_one_page_shows_them_all(
    live_server, context, ml_engineer, runs
):
    # Given a finished run whose loss has more steps than the metrics endpoint answers at once
    steps = METRICS_PAGE + 100
    run = TrainingRunFactory(
        dataset_version=runs["own"].dataset_version, config={"backbone": "builtin"},
        config_hash="e" * 64, status="succeeded", step=steps, total_steps=steps, epoch=1,
        finished_at=timezone.now(),
    )  # fmt: skip
    TrainingMetric.objects.bulk_create(
        TrainingMetric(run=run, name="train/loss", step=s, epoch=1, value=1 / s)
        for s in range(1, steps + 1)
    )
    sign_in(context, live_server, ml_engineer)
    page = context.new_page()

    # When its page opens, the chart ends at the last step
    _open(page, live_server, run)
    legend = page.locator('[data-chart="train/loss"] .sp-legend li')
    expect(legend).to_have_text(f"train/loss: {1 / steps:.3e} (last)".replace("e-0", "e-"))
    # (a pixel holds about five steps here: the hover lands near the end, past the first page)
    assert METRICS_PAGE < _hover(page, "train/loss", 0.999)["x"] <= steps
