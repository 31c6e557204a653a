"""The admin's import page in Chromium (issue 17): a lead picks a benchmark format and several
files (DPG-Bench's prompts/ folder), and a bad GenEval file comes back naming its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from annotation.services.annotators import user_create
from config.roles import Role
from generation_workers.models import Prompt, PromptSet
from tests.ui.conftest import sign_in

FIXTURES = Path(__file__).resolve().parents[1] / "prompts" / "fixtures"
PAGE = "/admin/generation_workers/promptset/import/"


@pytest.mark.django_db(transaction=True)
def test_a_lead_imports_dpg_bench_files_and_sees_a_bad_geneval_line_named(
    live_server, context, artifacts, tmp_path
):
    lead = user_create(username="import-lead", password="lead-pass-123", role=Role.LEAD)
    sign_in(context, live_server, lead)
    page = context.new_page()

    # when a lead imports the two DPG-Bench prompt files at once
    files = sorted((FIXTURES / "dpg_bench" / "prompts").glob("*.txt"))
    page.goto(f"{live_server.url}{PAGE}")
    page.fill("#id_name", "dpg")
    page.select_option("#id_format", "dpg-bench")
    page.set_input_files("#id_file", [str(path) for path in files])
    page.click("input[value='Import']")
    # then the set's page says both were saved
    prompt_set = PromptSet.objects.get(name="dpg")
    page.wait_for_url(
        f"{live_server.url}/admin/generation_workers/promptset/{prompt_set.pk}/change/"
    )
    assert "2 prompts saved" in page.text_content("ul.messagelist")
    assert Prompt.objects.filter(prompt_set=prompt_set, template="dpg-bench").count() == 2

    # when a GenEval file with an unknown position is imported
    bad = tmp_path / "evaluation_metadata.jsonl"
    bad.write_text(
        (FIXTURES / "geneval_evaluation_metadata.jsonl").read_text().replace('"below"', '"under"')
    )
    page.goto(f"{live_server.url}{PAGE}")
    page.fill("#id_name", "geneval")
    page.select_option("#id_format", "geneval")
    page.set_input_files("#id_file", str(bad))
    page.click("input[value='Import']")
    # then the page names the file, line and field, and nothing is saved
    error = page.inner_text(".errorlist")
    page.screenshot(path=str(artifacts / "prompt-import-error.png"), full_page=True)
    assert "evaluation_metadata.jsonl line 8: include[1].position[0]: one of:" in error
    assert "more bad lines" not in error
    assert not PromptSet.objects.filter(name="geneval").exists()
