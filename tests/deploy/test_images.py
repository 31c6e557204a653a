"""deploy/Dockerfile and .dockerignore, checked as far as a machine without a Docker daemon allows:
the file's instructions and stages, pinned bases, non-root users, and that each image installs
with make venv's command and constraints; the web image's dependency closure has no torch."""

import os
import re
import shlex
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
INSTRUCTIONS = {
    "FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
    "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL",
}  # fmt: skip
TARGETS = {"web": "cpu", "worker-cpu": "cpu", "worker-gpu": "gpu", "training": "gpu"}


def parse_dockerfile(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    instructions, pending = [], ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        keyword, _, args = (pending + line).strip().partition(" ")
        pending = ""
        instructions.append((keyword.upper(), args.strip()))
    assert not pending, "the file ends inside a continued line"
    return instructions


def stages(instructions) -> dict[str, list[tuple[str, str]]]:
    """Each stage's instructions by name; a stage starts with its FROM."""
    found, current = {}, None
    for keyword, args in instructions:
        if keyword == "FROM":
            words = args.split()
            assert len(words) == 3 and words[1].upper() == "AS", args
            current = words[2]
            assert current not in found, f"stage {current} twice"
            found[current] = []
        if current is not None:
            found[current].append((keyword, args))
    return found


def _parsed():
    instructions = parse_dockerfile(DOCKERFILE.read_text())
    return instructions, stages(instructions)


def test_every_instruction_is_a_dockerfile_instruction_and_every_stage_reference_resolves():
    instructions, by_stage = _parsed()
    assert {keyword for keyword, _ in instructions} <= INSTRUCTIONS
    args = {a.split("=")[0]: a.split("=", 1)[1] for k, a in instructions if k == "ARG"}
    seen = set()
    for name, body in by_stage.items():
        base = body[0][1].split()[0]
        if base.startswith("${"):
            assert base[2:-1] in args, base
        else:
            assert base in seen, f"{name} builds on {base}, not an earlier stage"
        for keyword, text in body:
            if keyword == "COPY" and "--from=" in text:
                source = re.search(r"--from=(\S+)", text).group(1)
                assert source in seen, f"{name} copies from {source}, not an earlier stage"
        seen.add(name)
    assert set(TARGETS) <= seen


def test_base_images_are_pinned_to_exact_versions():
    instructions, _ = _parsed()
    bases = [a.split("=", 1)[1] for k, a in instructions if k == "ARG" and "_IMAGE=" in a]
    assert bases
    for image in bases:
        tag = image.rsplit(":", 1)[1]
        assert re.match(r"\d+\.\d+\.\d+-", tag), f"{image}: not an exact version"


def _final_user(by_stage, name) -> str:
    """The user a target runs as: its last USER, else its base stage's."""
    body = by_stage[name]
    users = [args for keyword, args in body if keyword == "USER"]
    if users:
        return users[-1]
    base = body[0][1].split()[0]
    return _final_user(by_stage, base) if base in by_stage else "root"


def test_every_image_runs_as_a_non_root_user():
    _, by_stage = _parsed()
    for target in TARGETS:
        assert _final_user(by_stage, target) == "app", target


def _make_venv_install() -> list[str]:
    for line in (ROOT / "Makefile").read_text().splitlines():
        if "pip install" in line and "-c $(CONSTRAINTS)" in line:
            return shlex.split(line.strip().lstrip("@"))
    raise AssertionError("make venv's pip install line not found")


def _image_install(by_stage, target) -> list[str]:
    """The pip install of the build stage whose /opt/venv the target copies (or inherits)."""
    body = by_stage[target]
    copies = [a for k, a in body if k == "COPY" and "/opt/venv" in a and "--from=" in a]
    if not copies:
        return _image_install(by_stage, body[0][1].split()[0])
    build = re.search(r"--from=(\S+)", copies[0]).group(1)
    runs = [a for k, a in by_stage[build] if k == "RUN" and "pip install" in a]
    assert len(runs) == 1, build
    return shlex.split(runs[0])


def _extras(spec: str) -> set[str]:
    match = re.fullmatch(r"\.(?:\[([\w,]+)\])?", spec)
    assert match, spec
    return set(match.group(1).split(",")) if match.group(1) else set()


def test_images_install_with_make_venvs_command_and_constraints():
    """The same `python -m pip install -c constraints/<kind>.txt .[extras]` as `make venv`,
    without -e, --quiet and the dev extra: CPU images with constraints/cpu.txt (make venv's
    default), GPU images with constraints/gpu.txt (make venv CONSTRAINTS=constraints/gpu.txt)."""
    make = _make_venv_install()
    make_opts = make[make.index("install") + 1 :]
    assert make_opts[-2:] == ["-e", ".[ml,dev]"]
    make_common = [w for w in make_opts[:-2] if w not in ("--quiet",)]
    _, by_stage = _parsed()
    for target, kind in TARGETS.items():
        words = _image_install(by_stage, target)
        assert words[1:5] == ["-m", "pip", "install", "--progress-bar"], target
        opts = words[words.index("install") + 1 :]
        assert opts[:-1] == [
            w.replace("$(CONSTRAINTS)", f"constraints/{kind}.txt") for w in make_common
        ], target
        assert (ROOT / "constraints" / f"{kind}.txt").is_file()
        extras = _extras(opts[-1])
        assert extras <= _extras(make_opts[-1]) - {"dev"}, target
        assert extras == (set() if target == "web" else {"ml"}), target


def test_the_cpu_images_install_commands_resolve_offline_against_the_suites_venv():
    """The web and worker-cpu images' own pip commands (read from the Dockerfile) run in the
    suite's venv as a dry run without an index: pyproject.toml builds as a non-editable project
    and its requirements under constraints/cpu.txt are satisfied by what `make venv` installed
    (a constraint that contradicts a requirement fails here: ResolutionImpossible)."""
    _, by_stage = _parsed()
    for target in ("web", "worker-cpu"):
        words = _image_install(by_stage, target)
        options = words[words.index("install") + 1 :]
        result = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--dry-run", "--no-index"]
            + ["--no-build-isolation", *options],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, target + result.stdout + result.stderr
        assert "Would install spatialprefs-0.1.0" in result.stdout, target


def test_the_web_images_collectstatic_step_runs_and_compresses(tmp_path):
    """The web image's collectstatic RUN, read from the Dockerfile, in the suite's venv with the
    image's environment (no SECRET_KEY; SPATIALPREFS_VAR_DIR a fresh folder)."""
    _, by_stage = _parsed()
    (run,) = [a for k, a in by_stage["web"] if k == "RUN" and "collectstatic" in a]
    command = run.split("&&")[0].split()
    assert command[0] == "DJANGO_DEBUG=1" and command[1:3] == ["python", "manage.py"]
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DJANGO_DEBUG")}
    env |= {"DJANGO_DEBUG": "1", "SPATIALPREFS_VAR_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, *command[2:]],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    css = tmp_path / "static" / "admin" / "css" / "base.css"
    assert css.is_file() and css.with_suffix(".css.gz").is_file()


def _closure(requirements: list[str]) -> set[str]:
    """Installed distributions the requirements pull in, transitively (markers evaluated, no
    extras beyond those the requirements name)."""
    found, todo = set(), [Requirement(r) for r in requirements]
    while todo:
        requirement = todo.pop()
        if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(requirement.name)
        key = (name, frozenset(requirement.extras))
        if key in found:
            continue
        found.add(key)
        for line in metadata.requires(requirement.name) or []:
            child = Requirement(line)
            if child.marker and "extra" in str(child.marker):
                if not any(child.marker.evaluate({"extra": e}) for e in requirement.extras):
                    continue
                child.marker = None
            todo.append(child)
    return {name for name, _ in found}


def test_the_web_image_pulls_in_no_torch_and_no_diffusers():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    web = _closure(project["dependencies"])
    assert "django" in web and "gunicorn" in web
    assert not web & {"torch", "diffusers", "nvidia-cudnn-cu12"}, web & {"torch", "diffusers"}
    workers = _closure(project["dependencies"] + project["optional-dependencies"]["ml"])
    assert {"torch", "diffusers"} <= workers  # the closure does see them where they are


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_build_context():
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", "var", "deploy/.env", "deploy/proxy/certs"} <= ignored
    # What the image needs is not ignored.
    for needed in ("pyproject.toml", "constraints", "config", "manage.py"):
        assert needed not in ignored
