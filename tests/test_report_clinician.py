"""The clinician's page: one printable page with the expected sections and the stored figures."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.image import imread

from biofeedback.programme.practice import practise_weeks
from biofeedback.report_html import render_clinician_html
from biofeedback.report_pdf import (
    CAVEAT,
    SECTIONS,
    ClinicianData,
    _assessment_rows,
    build_page,
    load_clinician,
    page_texts,
    render,
)
from biofeedback.runtime import (
    direct_counts_factory,
    direct_virtual_source,
    virtual_learner_skills,
)
from biofeedback.store import Store

NOW = dt.datetime(2026, 11, 20, 18, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BIOFEEDBACK_HOME with 10 days of the learner's practice (seed 5) and its
    assessments (the first day and a week later: two to set side by side)."""
    root = tmp_path_factory.mktemp("clinician") / "home"
    (root / "data").mkdir(parents=True)
    practise_weeks(root / "data" / "biofeedback.sqlite", 2, seed=5, now=NOW,
                   source=direct_virtual_source, skills_for=virtual_learner_skills,
                   profiles=root / "data" / "profiles", counts_factory=direct_counts_factory(),
                   assess_every=7)
    return root


@pytest.fixture(scope="module")
def data(home: Path) -> ClinicianData:
    with Store(home / "data" / "biofeedback.sqlite") as store:
        return load_clinician(store, "demo", "4w", NOW, profiles_dir=home / "none")


@pytest.fixture(scope="module")
def pdf_bytes(data: ClinicianData) -> bytes:
    return render(build_page(data), "pdf")


def _pages(pdf: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf))


def test_one_page_with_every_section(data: ClinicianData, pdf_bytes: bytes) -> None:
    texts = " ".join(" ".join(page_texts(build_page(data))).split())
    for section in (*SECTIONS, CAVEAT, "demo", "Boost (kgoal, reverse-engineered)",
                    "VIRTUAL", "trend only"):
        assert section in texts
    assert pdf_bytes.startswith(b"%PDF") and _pages(pdf_bytes) == 1


def test_the_table_shows_the_stored_sessions(home: Path, data: ClinicianData) -> None:
    d = data
    head, rows, caption = _assessment_rows(d)
    assert "no assessment recorded" in caption
    first, last = d.progress.sessions[0], d.progress.sessions[-1]
    with Store(home / "data" / "biofeedback.sqlite") as store:
        info = store.session(last.id)
        rest = next(r for r in rows if r[0] == "rest before: mean")
        score = next(r for r in rows if r[0] == "score")
    assert head[2] == f"latest {last.start.astimezone():%Y-%m-%d}"
    assert rest[1:] == [f"{first.rest_mean:.1f}", f"{last.rest_mean:.1f}"]
    assert info.score is not None and abs(float(score[2]) - info.score) <= 0.51
    assert d.rep is not None and d.rep.session_id in {f.id for f in d.progress.sessions}


def test_html_carries_the_same_content(data: ClinicianData) -> None:
    page = render_clinician_html(data, b"\x89PNG")
    for section in ("Assessment", "Weeks", "Adherence", "Notes and strain events"):
        assert f"<h2>{section}</h2>" in page
    assert 'src="data:image/png;base64,' in page and "Oleksy 2021" in page
    assert 'src="http' not in page and "<link" not in page  # nothing leaves the file
    last = data.progress.sessions[-1]
    assert f"latest {last.start.astimezone():%Y-%m-%d}" in page


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="poppler-utils not installed")
def test_the_pdf_renders_as_one_a4_image(pdf_bytes: bytes, tmp_path: Path) -> None:
    pdf = tmp_path / "page.pdf"
    pdf.write_bytes(pdf_bytes)
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(pdf), str(tmp_path / "img")],
                   check=True)
    images = sorted(tmp_path.glob("img*.png"))
    assert len(images) == 1
    img = imread(images[0])
    h, w = img.shape[:2]
    assert abs(h / w - 11.69 / 8.27) < 0.02
    ink = img[..., :3].mean(axis=2) < 0.5
    assert 0.01 < ink.mean() < 0.4  # drawn, not blank and not a black page
    assert ink[: h // 12].any()  # the header is there
    text = subprocess.run(["pdftotext", str(pdf), "-"], check=True, capture_output=True,
                          text=True).stdout
    for section in SECTIONS:
        assert section in text


def test_report_command(home: Path, cli: Any, tmp_path: Path) -> None:
    copy = tmp_path / "home"
    shutil.copytree(home, copy)
    env = {"BIOFEEDBACK_HOME": str(copy)}
    pdf, page = tmp_path / "p.pdf", tmp_path / "p.html"
    args = ("report", "--person", "demo", "--since", "2026-10-01", "--pdf", str(pdf),
            "--html", str(page))
    r = cli(*args, "--json", env=env)
    assert r.returncode == 0, r.stderr
    assert _pages(pdf.read_bytes()) == 1 and "<h2>Weeks</h2>" in page.read_text()
    assert pdf.stat().st_mode & 0o777 == 0o600
    before = pdf.read_bytes()
    r = cli(*args, env=env)
    assert r.returncode == 1 and "exists" in r.stderr and pdf.read_bytes() == before
    r = cli("report", "--person", "demo", env=env)
    assert r.returncode == 2 and "--pdf" in r.stderr
    r = cli("report", "1", "--pdf", str(tmp_path / "x.pdf"), env=env)
    assert r.returncode == 2 and "without a session ID" in r.stderr


def test_an_empty_period_is_a_page_that_says_so(home: Path) -> None:
    with Store(home / "data" / "biofeedback.sqlite") as store:
        d = load_clinician(store, "nobody", "4w", NOW, profiles_dir=home / "none")
    texts = page_texts(build_page(d))
    assert "No practice sessions in this period." in texts
    assert np.isfinite(len(render(build_page(d), "pdf")))


def test_two_assessments_side_by_side(data: ClinicianData) -> None:
    from dataclasses import replace
    from types import SimpleNamespace

    def profile(day: int, rest: float, rise: float) -> Any:
        fig = {"unit": "count", "assessment": {"pre_baseline": {"mean": rest, "sd": 2.0},
                                               "phasic": {"rise_s": rise}}}
        return SimpleNamespace(created_at=dt.datetime(2026, 10, day, tzinfo=dt.UTC),
                               figures=fig)

    d = replace(data, assessments=[profile(1, 700.0, 0.5), profile(29, 680.0, 0.4)])
    head, rows, caption = _assessment_rows(d)
    assert head[1:] == ["previous 2026-10-01", "latest 2026-10-29"]
    assert rows[0] == ["rest before: mean", "700.0", "680.0"]
    assert ["rise time (s) †", "0.50", "0.40"] in rows
    assert ["holds: mean amplitude", "–", "–"] in rows  # not in these profiles
    assert caption.startswith("Glazer-style assessment (count)")


def test_the_learners_assessments_side_by_side(home: Path) -> None:
    """demo --weeks' assessments are saved like real ones; the page's column of each is
    what the stored profile says (read back from its file), and they are the demo's."""
    import json

    with Store(home / "data" / "biofeedback.sqlite") as store:
        d = load_clinician(store, "demo", "4w", NOW, profiles_dir=home / "data" / "profiles")
        marked = {p.resolve() for p in store.demo_marks().profiles}
    files = sorted((home / "data" / "profiles" / "demo").glob("*.json"))
    assert len(d.assessments) == 2 and {f.resolve() for f in files} == marked
    docs = sorted((json.loads(f.read_text()) for f in files), key=lambda j: j["created_at"])
    assert all(j["kind"] == "assessment" and j["sensor"]["virtual"] for j in docs)
    first_session = d.progress.sessions[0].start
    assert d.assessments[0].created_at <= first_session  # the morning before the session
    head, rows, caption = _assessment_rows(d)
    assert caption.startswith("Glazer-style assessment (count)")
    assert head[1:] == [f"previous {d.assessments[0].created_at:%Y-%m-%d}",
                        f"latest {d.assessments[1].created_at:%Y-%m-%d}"]
    paths = {"rest before: mean": (("pre_baseline", "mean"), 1),
             "rest after: SD": (("post_baseline", "sd"), 2),
             "quick flicks: peak": (("phasic", "peak_amplitude"), 1),
             "holds: mean amplitude": (("tonic", "mean_amplitude"), 1),
             "endurance: fatigue ratio": (("endurance", "fatigue_ratio"), 2),
             "rise time (s) †": (("phasic", "rise_s"), 2)}
    by_label = {r[0]: r[1:] for r in rows}
    for label, (path, nd) in paths.items():
        want = []
        for j in docs:
            x: Any = j["figures"]["assessment"]
            for k in path:
                x = x[k]
            want.append(f"{x:.{nd}f}")
        assert by_label[label] == want, label
    assert all(v != "–" for v in by_label["rest before: mean"])
    # The same person a week on, more skilled: the guarded floor has let go a little.
    rest = [j["figures"]["assessment"]["pre_baseline"] for j in docs]
    assert rest[1]["mean"] < rest[0]["mean"] and rest[1]["sd"] < rest[0]["sd"]
    texts = " ".join(page_texts(build_page(d)))
    assert "Glazer-style assessment (count)" in texts
