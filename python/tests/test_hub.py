"""Hub ids (lesa_py.hub): resolution against a local hub cache laid out as huggingface_hub
does (checked with its own scan_cache_dir), offline; `lesa expand/inspect ORG/NAME[@REV]`."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from _cli import lesa, manifest, tree_hash
from hubcache import populate
from lesa_py import hub


@pytest.fixture
def cache(tmp_path, monkeypatch, fx):
    """HF_HOME with lesa-test/tiny at main and tag v1, offline."""
    home = tmp_path / "hf"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(home / "hub"))
    commit = populate(home, "lesa-test/tiny", fx("tiny-llama-f32"), ("main", "v1"))
    return home, commit


@pytest.mark.parametrize("spec, repo, rev", [("org/name", "org/name", None), ("Org-1/na_me.v2@main", "Org-1/na_me.v2", "main"),
                                             ("org/name@refs/pr/1", "org/name", "refs/pr/1"), ("o/n@" + "a" * 40, "o/n", "a" * 40)])
def test_parse_accepts(spec, repo, rev):
    assert hub.parse(spec) == (repo, rev)


@pytest.mark.parametrize("spec, why", [("", "neither a directory"), ("../x", "neither a directory"), ("a/b/c", "neither a directory"),
                                       ("org/", "neither a directory"), ("/org/name", "neither a directory"),
                                       ("org/name@", "bad revision"), ("org/name@../../etc", "bad revision"),
                                       ("org/na--me", "not a valid hub id"), ("org/name.git", "not a valid hub id")])
def test_parse_refuses(spec, why):
    with pytest.raises(hub.UserError, match=why):
        hub.parse(spec)


def test_weight_patterns():
    assert hub.weight_patterns(["config.json", "model.safetensors", "consolidated.safetensors"]) == ["model*.safetensors"]
    assert hub.weight_patterns(["config.json", "weights.safetensors"]) == ["*.safetensors"]
    with pytest.raises(hub.UserError, match=r"only pickle weights \(pytorch_model.bin\)"):
        hub.weight_patterns(["config.json", "pytorch_model.bin"])


def test_layout_is_what_huggingface_hub_reads(cache):
    from huggingface_hub import scan_cache_dir

    home, commit = cache
    info = scan_cache_dir(home / "hub")
    assert not info.warnings
    (repo,) = info.repos
    (rev,) = repo.revisions
    assert repo.repo_id == "lesa-test/tiny" and rev.commit_hash == commit and set(rev.refs) == {"main", "v1"}


def test_resolve_offline_by_branch_tag_and_commit(cache, fx):
    home, commit = cache
    snap = home / "hub" / "models--lesa-test--tiny" / "snapshots" / commit
    for spec in ("lesa-test/tiny", "lesa-test/tiny@v1", f"lesa-test/tiny@{commit}"):
        assert hub.resolve(spec) == snap
    assert tree_hash(snap) == tree_hash(fx("tiny-llama-f32"))
    with pytest.raises(hub.UserError, match="not in the local cache.*HF_HUB_OFFLINE"):
        hub.resolve("lesa-test/tiny@v2")
    with pytest.raises(hub.UserError, match="not in the local cache"):
        hub.resolve("lesa-test/absent")


def test_cached_pickle_only_snapshot_is_refused(cache, tmp_path):
    home, _ = cache
    src = tmp_path / "pickled"
    src.mkdir()
    (src / "config.json").write_text("{}")
    (src / "pytorch_model.bin").write_bytes(b"not unpickled")
    populate(home, "lesa-test/pickled", src)
    with pytest.raises(hub.UserError, match="only pickle weights"):
        hub.resolve("lesa-test/pickled")


def test_local_dir_keeps_paths(tmp_path):
    for p in (str(tmp_path), "./org/name", "../org/name", "name", "~/x"):
        assert hub.local_dir(p) == Path(p)


def test_cli_expand_from_hub_id_equals_expand_from_directory(cache, fx, tmp_path):
    home, commit = cache
    args = ["--method", "copy", "--target-layers", "10", "--quiet"]
    lesa("expand", str(fx("tiny-llama-f32")), "-o", tmp_path / "from-dir", *args)
    lesa("expand", "lesa-test/tiny@v1", "-o", tmp_path / "from-hub", *args)
    a, b = tree_hash(tmp_path / "from-dir"), tree_hash(tmp_path / "from-hub")
    assert a.pop("lesa.json") != b.pop("lesa.json") and a == b
    assert manifest(tmp_path / "from-hub")["source"]["hub"] == {"repo": "lesa-test/tiny", "revision": "v1", "commit": commit}
    assert "hub" not in manifest(tmp_path / "from-dir")["source"]
    shown = json.loads(lesa("inspect", "lesa-test/tiny", "--json").stdout)
    assert shown["layers"] == 8 and shown["dir"].endswith(commit)
    p = lesa("inspect", "lesa-test/nope@v9", check=False)
    assert p.returncode == 2 and p.stderr.strip().splitlines() == [
        f"lesa: lesa-test/nope@v9 is not in the local cache ({home / 'hub'}) and HF_HUB_OFFLINE is set"]
