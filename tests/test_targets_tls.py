"""Publishing over HTTPS to real servers: wsgidav through cheroot with TLS, and the readers' web
server with TLS, both certified by a private authority made here (``_servers.Pki``), as an agency's
internal servers are.

What a producer needs on release day: with the authority named (``ca_file``) the release goes live
and is verified over HTTPS; a certificate that is not trusted, names another host or has expired is
refused (never published over an unverified connection), said in words that tell what to set, and
not retried: the release goes to the fallback target at once instead of waiting out the backoff.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _servers import HttpSite, Pki, Webdav
from excessmort.exceptions import InputError
from excessmort.release.config import load_config
from excessmort.release.target_url import build_target, spec_from_url
from excessmort.release.targets import DirectoryTarget, StagedRelease
from excessmort.release.webdav import POINTER_NAME, WebdavTarget, pointed_release
from excessmort.report.manifest import verify_manifest
from test_publish import SLOT, make_staged, run

pytestmark = [pytest.mark.timeout(120), pytest.mark.network]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("other-pki"), name="Somebody Else's CA")


def _dav_root(tmp_path: Path) -> Path:
    root = tmp_path / "dav"
    root.mkdir()
    return root


def _live(root: Path, staged: Path) -> bool:
    rid = pointed_release((root / POINTER_NAME).read_bytes())
    manifest = json.loads((staged / "manifest.json").read_text())
    return rid == StagedRelease.load(staged).release_id and not verify_manifest(
        root / "releases" / rid, manifest
    )


def test_https_webdav_with_the_agency_ca_goes_live_verified_over_https(pki, tmp_path):
    root, staged = _dav_root(tmp_path), make_staged(tmp_path)
    tls = pki.issue("dav")
    with Webdav(root, tls=tls) as dav, HttpSite(root, tls=tls) as site:
        assert dav.url.startswith("https://") and site.url.startswith("https://")
        target = WebdavTarget("dav", dav.url, base_url=site.url, ca_file=pki.ca_file, timeout=5)
        result = run(staged, target)
    assert result.published and result.target == "dav", result.attempts
    assert [a.ok for a in result.attempts] == [True]
    assert _live(root, staged)
    # the readers' server was asked for every file of the release, over HTTPS
    rid = result.release_id
    manifest = json.loads((staged / "manifest.json").read_text())
    wanted = {f"/releases/{rid}/{e['path']}" for e in manifest["files"]}
    assert wanted <= set(site.requests)


@pytest.mark.parametrize(
    "case",
    ["unknown authority", "other host", "expired"],
)
def test_refused_certificate_is_not_retried_and_the_fallback_publishes_at_once(
    pki, other_pki, tmp_path, case
):
    root, staged = _dav_root(tmp_path), make_staged(tmp_path)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    if case == "unknown authority":
        tls, trusted = other_pki.issue("dav"), pki.ca_file
    elif case == "other host":
        tls, trusted = pki.issue("dav-other", hosts=("www.example.org",)), pki.ca_file
    else:
        tls, trusted = pki.issue("dav-expired", days=-1), pki.ca_file
    with Webdav(root, tls=tls) as dav:
        target = WebdavTarget("dav", dav.url, ca_file=trusted, timeout=5)
        result = run(staged, target, fallbacks=[DirectoryTarget("mirror", mirror)])
    assert result.published and result.target == "mirror"
    failed = [a for a in result.attempts if not a.ok]
    assert len(failed) == 1, result.attempts  # not retried: the certificate will not change
    error = failed[0].error or ""
    assert f"TLS certificate of 127.0.0.1:{dav.port} not accepted" in error, error
    assert str(pki.ca_file) in error and "set ca_file" in error
    reason = {
        "unknown authority": "unable to get local issuer certificate",
        "other host": "IP address mismatch",
        "expired": "certificate has expired",
    }[case]
    assert reason in error, error
    # the WebDAV server got nothing: no pointer, no release, no partial
    assert not (root / POINTER_NAME).exists() and not (root / "releases").exists()
    # the fallback was tried straight after the refusal (no backoff, no 20 s fallback window)
    assert (result.published_at - SLOT).total_seconds() < 1


def test_system_store_does_not_trust_a_private_ca_and_says_what_to_set(pki, tmp_path):
    root, staged = _dav_root(tmp_path), make_staged(tmp_path)
    with Webdav(root, tls=pki.issue("dav")) as dav:
        result = run(staged, WebdavTarget("dav", dav.url, timeout=5))
    assert not result.published
    (failed,) = result.attempts
    assert "checked against the system CA store" in (failed.error or "")
    assert "set ca_file" in (failed.error or "")


def test_folder_target_verifies_over_https_with_its_ca_file(pki, tmp_path):
    staged = make_staged(tmp_path)
    www = tmp_path / "www"
    www.mkdir()
    with HttpSite(www, tls=pki.issue("www")) as site:
        base = site.url + "current/"
        ok = run(staged, DirectoryTarget("www", www, base_url=base, ca_file=pki.ca_file))
        untrusted = run(make_staged(tmp_path, "b"), DirectoryTarget("www", www, base_url=base))
    assert ok.published, ok.attempts
    assert not untrusted.published
    assert all("TLS certificate" in (a.error or "") for a in untrusted.attempts)
    assert untrusted.attempts[0].step == "verify-http"


def test_ca_file_in_configuration_and_url_is_checked_at_load(pki, tmp_path):
    spec = spec_from_url(f"webdav+https://127.0.0.1:1/dav/?ca_file={pki.ca_file}")
    assert spec.ca_file == pki.ca_file
    target = build_target(spec)
    assert isinstance(target, WebdavTarget) and target.ca_file == str(pki.ca_file)
    cfg = tmp_path / "release.toml"
    cfg.write_text(
        "[[targets]]\n"
        'name = "live"\n'
        f'path = "{tmp_path / "www"}"\n'
        'base_url = "https://www.example.org/"\n'
        f'ca_file = "{pki.ca_file}"\n'
    )
    (loaded,) = load_config(cfg).targets
    assert loaded.ca_file == pki.ca_file
    missing = tmp_path / "nope.pem"
    with pytest.raises(InputError, match=r"--to\.ca_file.*must be an existing PEM file.*nope\.pem"):
        spec_from_url(f"webdav+https://127.0.0.1:1/dav/?ca_file={missing}")
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    cfg.write_text(cfg.read_text().replace(str(pki.ca_file), str(junk)))
    with pytest.raises(InputError, match=r"targets\[0\]\.ca_file.*junk\.pem"):
        load_config(cfg)
