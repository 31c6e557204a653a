"""Spatial benchmarks' prompt files imported in their own formats (issue 17), through the API,
the admin's import page and `manage.py import_prompts`: GenEval's evaluation_metadata.jsonl
(its position lines), T2I-CompBench's spatial*.txt (CRLF lines), DPG-Bench's prompts/*.txt
(one prompt a file). The fixture files under fixtures/ are written in those formats, as the
benchmarks' repositories hold them (djghosh13/geneval, Karine-Huang/T2I-CompBench,
TencentQQGYLab/ELLA). Bad files: a 4xx or a command error naming file, line and field, and
nothing saved."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client

from generation_workers.models import Prompt, PromptSet

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).parent / "fixtures"
GENEVAL = FIXTURES / "geneval_evaluation_metadata.jsonl"
COMPBENCH_2D = FIXTURES / "t2i_compbench_spatial.txt"
COMPBENCH_3D = FIXTURES / "t2i_compbench_3d_spatial.txt"
DPG_PROMPTS = FIXTURES / "dpg_bench" / "prompts"
IMPORT = "/api/prompt-sets/import/"


def upload(path: Path, name: str | None = None) -> SimpleUploadedFile:
    return SimpleUploadedFile(name or path.name, path.read_bytes())


def prompts(prompt_set_id: int) -> dict[str, Prompt]:
    return {p.text: p for p in Prompt.objects.filter(prompt_set_id=prompt_set_id)}


def nothing_saved() -> tuple[int, int]:
    return PromptSet.objects.count(), Prompt.objects.count()


# -- GenEval ----------------------------------------------------------------------------------


def test_genevals_position_lines_import_with_their_objects_and_relation(lead_client):
    # the fixture is in evaluation_metadata.jsonl's format: the real file's lines have tags
    # single_object, two_object, counting (with exclude), colors, color_attr and position
    assert GENEVAL.read_text().count('"tag": "position"') == 4
    response = lead_client.post(
        IMPORT, {"name": "geneval", "format": "geneval", "file": upload(GENEVAL)}
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["source"], body["prompt_count"]) == ("import", 4)
    assert body["spec"] == {
        "format": "geneval", "files": [GENEVAL.name], "tags": {"position": 4},
        "skipped_tags": {"colors": 1, "counting": 1, "single_object": 1, "two_object": 1},
        "exclude_kept_as_text": 0, "repeats_dropped": [],
    }  # fmt: skip
    stored = prompts(body["id"])
    dog = stored["a photo of a dog right of a teddy bear"]
    # include[1] has position ["right of", 0]: the dog is right of include[0], the teddy bear
    assert dog.structure == {
        "objects": [{"id": "o1", "name": "teddy bear", "count": 1, "attributes": {}},
                    {"id": "o2", "name": "dog", "count": 1, "attributes": {}}],
        "relations": [{"subject": "o2", "relation": "right_of", "objects": ["o1"]}],
        "scene": None,
    }  # fmt: skip
    assert (dog.relation_keys, dog.object_keys) == ("|right_of|", "|dog|teddy bear|")
    assert (dog.template, dog.tier, dog.group_key) == ("geneval", 1, "dog+teddy bear")
    assert {p.relation_keys for p in stored.values()} == {
        "|right_of|", "|above|", "|left_of|", "|below|"
    }  # fmt: skip
    # and the set answers the relation filter like any other
    listed = lead_client.get("/api/prompts/", {"prompt_set": body["id"], "relation": "above"})
    assert [p["text"] for p in listed.json()] == ["a photo of a wine glass above a kite"]


def test_a_geneval_line_with_an_unknown_position_is_a_400_naming_file_line_and_field(lead_client):
    lines = GENEVAL.read_text().splitlines()
    lines[5] = lines[5].replace('"above"', '"diagonal to"')
    before = nothing_saved()
    response = lead_client.post(
        IMPORT,
        {"name": "geneval", "format": "geneval",
         "file": SimpleUploadedFile("evaluation_metadata.jsonl", "\n".join(lines).encode())},
    )  # fmt: skip
    assert response.status_code == 400
    body = response.json()
    assert body["field"] == "files[evaluation_metadata.jsonl].lines[6].include[1].position[0]"
    assert body["detail"].startswith("evaluation_metadata.jsonl line 6: include[1].position[0]:")
    assert nothing_saved() == before


def test_a_geneval_object_outside_cocos_classes_is_refused(lead_client):
    line = {"tag": "position", "prompt": "a photo of a dragon left of a cow",
            "include": [{"class": "cow", "count": 1},
                        {"class": "dragon", "count": 1, "position": ["left of", 0]}]}  # fmt: skip
    response = lead_client.post(
        IMPORT, {"name": "g", "format": "geneval", "jsonl": json.dumps(line)}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["field"] == "files[jsonl].lines[1].objects[1].name"
    assert PromptSet.objects.count() == 0


# -- T2I-CompBench ----------------------------------------------------------------------------


def test_compbench_spatial_files_import_from_the_command_with_relations_by_our_synonyms(
    capsys,
):
    # given the 2D and 3D files with their CRLF line ends, the 2D one listing a prompt twice
    assert b"\r\n" in COMPBENCH_2D.read_bytes()
    call_command(
        "import_prompts", str(COMPBENCH_2D), str(COMPBENCH_3D), "--name", "compbench",
        "--format", "t2i-compbench",
    )  # fmt: skip
    prompt_set = PromptSet.objects.get(name="compbench")
    stored = prompts(prompt_set.pk)
    assert prompt_set.prompt_count == len(stored) == 11
    expected = {
        "a balloon on the top of a giraffe": "|on_top_of|",
        "a horse on the right of a man": "|right_of|",
        "a rabbit next to a balloon": "|next_to|",
        "a mouse on side of a key": "|next_to|",
        "a girl on the bottom of a frog": "|under|",
        "a cat near a lamp": "|near|",
        "a bee on the left of a refrigerator": "|left_of|",
        "a sofa in front of a plate": "|in_front_of|",
        "a horse hidden by a television": "|behind|",
        "a fish behind a butterfly": "|behind|",
        "a candle hidden by a candle": "",  # one object twice: kept as text only
    }
    assert {text: p.relation_keys for text, p in stored.items()} == expected
    balloon = stored["a balloon on the top of a giraffe"]
    assert balloon.structure["relations"] == [
        {"subject": "o1", "relation": "on_top_of", "objects": ["o2"]}
    ]
    assert [o["name"] for o in balloon.structure["objects"]] == ["balloon", "giraffe"]
    assert (balloon.template, balloon.tier) == ("t2i-compbench", 1)
    candle = stored["a candle hidden by a candle"]
    assert candle.structure == {"objects": [], "relations": [], "scene": None}
    assert prompt_set.spec == {
        "format": "t2i-compbench", "files": [COMPBENCH_2D.name, COMPBENCH_3D.name],
        "text_only": 1, "repeats_dropped": [f"{COMPBENCH_2D.name} line 8"],
    }  # fmt: skip
    out = capsys.readouterr().out
    assert "11 prompts" in out and "'text_only': 1" in out


def test_a_compbench_line_that_does_not_read_is_a_command_error_naming_it(tmp_path):
    bad = tmp_path / "spatial_val.txt"
    bad.write_bytes(COMPBENCH_2D.read_bytes() + b"a dog chasing a cat\r\n")
    before = nothing_saved()
    with pytest.raises(CommandError) as raised:
        call_command("import_prompts", str(bad), "--name", "compbench", "--format", "t2i-compbench")
    message = str(raised.value)
    assert message.startswith("files[spatial_val.txt].lines[9].text: spatial_val.txt line 9:")
    assert "does not read as" in message
    assert nothing_saved() == before


# -- DPG-Bench --------------------------------------------------------------------------------


def test_dpg_bench_prompt_files_import_from_the_admin_as_text_only(lead):
    client = Client()
    client.force_login(lead)
    files = sorted(DPG_PROMPTS.glob("*.txt"))
    response = client.post(
        "/admin/generation_workers/promptset/import/",
        {"name": "dpg", "format": "dpg-bench", "file": [upload(path) for path in files]},
    )
    assert response.status_code == 302, response.content.decode()[-2000:]
    prompt_set = PromptSet.objects.get(name="dpg")
    stored = prompts(prompt_set.pk)
    assert set(stored) == {path.read_text() for path in files}
    for path in files:
        prompt = stored[path.read_text()]
        assert prompt.structure == {"objects": [], "relations": [], "scene": None}
        assert (prompt.relation_keys, prompt.object_keys) == ("", "")
        assert (prompt.template, prompt.tier) == ("dpg-bench", 3)
        assert prompt.group_key == f"dpg-bench:{path.stem}"
    assert prompt_set.spec == {
        "format": "dpg-bench", "files": [p.name for p in files], "text_only": 2,
        "repeats_dropped": [],
    }  # fmt: skip


def test_dpg_bench_through_the_api_and_the_command_from_the_prompts_folder(lead_client):
    files = sorted(DPG_PROMPTS.glob("*.txt"))
    response = lead_client.post(
        IMPORT, {"name": "dpg", "format": "dpg-bench", "file": [upload(p) for p in files]}
    )
    call_command("import_prompts", str(DPG_PROMPTS), "--name", "dpg", "--format", "dpg-bench")
    assert response.status_code == 201, response.json()
    assert response.json()["prompt_count"] == 2
    again = PromptSet.objects.get(name="dpg", version=2)
    assert set(prompts(again.pk)) == {p.read_text() for p in files}


def test_bad_dpg_bench_files_are_400s_and_nothing_is_saved(lead_client):
    good = upload(sorted(DPG_PROMPTS.glob("*.txt"))[0])
    not_txt = lead_client.post(
        IMPORT,
        {"name": "dpg", "format": "dpg-bench",
         "file": [good, SimpleUploadedFile("notes.md", b"a prompt")]},
    )  # fmt: skip
    latin1 = lead_client.post(
        IMPORT,
        {"name": "dpg", "format": "dpg-bench", "file": SimpleUploadedFile("7.txt", b"caf\xe9")},
    )
    nul = lead_client.post(
        IMPORT,
        {"name": "dpg", "format": "dpg-bench", "file": SimpleUploadedFile("8.txt", b"a\x00cat")},
    )
    empty = lead_client.post(
        IMPORT,
        {"name": "dpg", "format": "dpg-bench", "file": SimpleUploadedFile("9.txt", b"  \n")},
    )
    with_vocabulary = lead_client.post(
        IMPORT,
        {
            "name": "dpg",
            "format": "dpg-bench",
            "vocabulary": '"coco"',
            "file": upload(sorted(DPG_PROMPTS.glob("*.txt"))[0]),
        },
    )
    assert [r.status_code for r in (not_txt, latin1, nul, empty, with_vocabulary)] == [400] * 5
    assert not_txt.json()["field"] == "files[notes.md].lines[1].file"
    assert latin1.json()["field"] == "files[7.txt]"
    assert nul.json()["field"] == "files[8.txt].lines[1].text"
    assert empty.json()["field"] == "files[9.txt].lines[1].text"
    assert with_vocabulary.json()["field"] == "vocabulary"
    assert nothing_saved() == (0, 0)


def test_an_unknown_format_is_a_400_and_annotators_cannot_import(lead_client, annotator_client):
    unknown = lead_client.post(IMPORT, {"name": "x", "format": "parti", "file": upload(GENEVAL)})
    refused = annotator_client.post(
        IMPORT, {"name": "x", "format": "geneval", "file": upload(GENEVAL)}
    )
    assert (unknown.status_code, unknown.json()["field"]) == (400, "format")
    assert refused.status_code == 403
    assert nothing_saved() == (0, 0)
