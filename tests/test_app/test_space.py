"""The Hugging Face Space: its requirements install CPU torch and everything the app imports,
and its folder routes every binary through LFS (the Hub refuses them in plain git)."""

import ast
import fnmatch
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DIST_OF = {"PIL": "pillow"}   # import name -> distribution name, where they differ


def requirements(path: Path) -> tuple[list[str], dict[str, str]]:
    options, pins = [], {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-"):
            options.append(line)
        elif line:
            name = re.split(r"[<>=!~\[ ]", line, maxsplit=1)[0].lower()
            pins[name] = line
    return options, pins


def top_level_imports(folder: Path) -> set[str]:
    """Third-party modules imported at module level (lazy imports inside functions are for
    offline tools such as the UMAP fit, not for the running app)."""
    names = set()
    for path in folder.glob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in ("rtm_core", "app", "__future__")}


def test_space_requirements_install_cpu_torch_and_cover_the_app():
    options, pins = requirements(ROOT / "space" / "requirements.txt")
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in options
    _, main_pins = requirements(ROOT / "requirements.txt")
    version = re.search(r"==([\d.]+)", main_pins["torch"]).group(1)
    assert pins["torch"] == f"torch=={version}+cpu"      # the same torch as everywhere, its CPU build
    needed = top_level_imports(ROOT / "app") | top_level_imports(ROOT / "rtm_core") | top_level_imports(ROOT)
    missing = {DIST_OF.get(n, n).lower() for n in needed} - set(pins)
    assert not missing, f"the Space would not install {sorted(missing)}"
    assert "umap-learn" not in pins and "scikit-learn" not in pins   # offline tools stay out of the Space


def test_the_space_readme_links_and_pictures_resolve_inside_the_folder(tmp_path):
    out = tmp_path / "space"
    subprocess.run(["bash", str(ROOT / "scripts" / "make_space.sh"), str(out)], check=True, capture_output=True)
    readme = (out / "README.md").read_text()
    targets = {t for t in re.findall(r"\]\(([^)#\s]+)", readme) + re.findall(r'src="([^"]+)"', readme)
               if not re.match(r"[a-z]+:", t)}
    assert "docs/app.png" in targets and "docs/TRAINING.md" in targets
    missing = sorted(t for t in targets if not (out / t).is_file())
    assert not missing, f"the Space's README points at files the Space does not have: {missing}"


def test_push_space_stops_with_a_clear_message_without_git_lfs(tmp_path):
    out = tmp_path / "space"
    subprocess.run(["bash", str(ROOT / "scripts" / "make_space.sh"), str(out)], check=True, capture_output=True)
    bare = tmp_path / "bin"                         # a PATH whose git has no lfs subcommand
    bare.mkdir()
    (bare / "git").symlink_to("/usr/bin/git")
    done = subprocess.run(["/bin/bash", str(ROOT / "scripts" / "push_space.sh"), str(out), "https://example.invalid/x"],
                          capture_output=True, text=True, env={"PATH": str(bare), "HOME": str(tmp_path)})
    assert done.returncode == 3 and "git-lfs is not installed" in done.stderr
    assert not (out / ".git").exists()              # nothing was committed


def test_make_space_builds_a_folder_whose_binaries_go_through_lfs(tmp_path):
    out = tmp_path / "space"
    subprocess.run(["bash", str(ROOT / "scripts" / "make_space.sh"), str(out)], check=True, capture_output=True)
    assert (out / "app.py").is_file() and (out / "README.md").read_text().startswith("---\ntitle:")
    assert (out / "requirements.txt").read_text() == (ROOT / "space" / "requirements.txt").read_text()
    patterns = [line.split()[0] for line in (out / ".gitattributes").read_text().splitlines()
                if "filter=lfs" in line]
    binaries = [p for p in out.rglob("*") if p.is_file() and b"\0" in p.read_bytes()[:8000]]
    assert binaries, "the Space ships its checkpoints"
    plain = [str(p.relative_to(out)) for p in binaries if not any(fnmatch.fnmatch(p.name, pat) for pat in patterns)]
    assert plain == [], f"binary files outside LFS: {plain}"
    assert not list(out.rglob("__pycache__")) and not (out / "train").exists()
    assert subprocess.run(["bash", str(ROOT / "scripts" / "make_space.sh"), str(out)], capture_output=True).returncode == 2
