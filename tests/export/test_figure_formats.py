"""Figures for papers: `optui export --format png|pdf|svg`; PDFs embed their fonts as TrueType,
SVGs draw text as paths, and a PDF rendered back (pdftoppm) shows the report-style figure."""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from typer.testing import CliRunner

from optui.export.figures import save_figure

from support.stores import make_store


def invoke(*args):
    from optui.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("figures")
    _, study_id, search_id = make_store(tmp_path / "runs")
    out = tmp_path / "exports"
    result = invoke("export", study_id, search_id, "--format", "png", "-f", "pdf,svg", "--dpi", "40",
                    "--store", tmp_path / "runs", "--out", out)
    assert result.exit_code == 0, result.output
    return out / "demo" / study_id, out / "demo" / search_id


def test_every_figure_in_every_chosen_format(exported):
    study, search = exported
    stems = {"compare-01-sgd-vs-adam", "config-sgd", "config-adam"}
    assert {p.name for p in study.iterdir()} == {f"{s}.{k}" for s in stems for k in ("png", "pdf", "svg")}
    scatter = {"search-adam-learning_rate", "search-adam-batch_size", "search-adam-history"}
    assert {p.name for p in search.iterdir()} == {f"{s}.{k}" for s in scatter for k in ("png", "pdf", "svg")}
    for path in study.iterdir():
        head = path.read_bytes()[:8]
        assert {"png": head == b"\x89PNG\r\n\x1a\n", "pdf": head.startswith(b"%PDF-"),
                "svg": b"<?xml" in head}[path.suffix[1:]], path


def pdf_fonts(data: bytes) -> tuple[set[str], set[str]]:
    """(font subtypes, embedded font-file kinds) named in a PDF's objects."""
    subtypes = set(re.findall(rb"/Subtype\s*/(Type3|Type1|TrueType|CIDFontType2|Type0)", data))
    files = set(re.findall(rb"/(FontFile2|FontFile3|FontFile)\b", data))
    return {s.decode() for s in subtypes}, {f.decode() for f in files}


def test_pdf_fonts_are_embedded_truetype(exported):
    study, _ = exported
    for pdf in study.glob("*.pdf"):
        subtypes, files = pdf_fonts(pdf.read_bytes())
        assert "Type3" not in subtypes, pdf  # matplotlib's default, refused by many journals
        assert "FontFile2" in files, pdf  # the TrueType program itself is in the file
    if shutil.which("pdffonts"):
        listing = subprocess.run(["pdffonts", str(study / "config-sgd.pdf")], capture_output=True, text=True)
        rows = listing.stdout.splitlines()[2:]
        assert rows and all(" yes " in r for r in rows), listing.stdout  # emb column


def test_svg_text_is_paths_and_files_are_reproducible(exported, tmp_path):
    study, _ = exported
    root = ET.parse(study / "config-sgd.svg").getroot()
    ns = {"svg": "http://www.w3.org/2000/svg"}
    assert not root.findall(".//svg:text", ns)  # text drawn as glyph paths: no font needed
    assert len(root.findall(".//svg:path", ns)) > 20
    from optui.export.figures import config_figure
    from optui.store import Store

    run = Store.open(study.parents[2] / "runs").load_run(study.name)
    for kind in ("pdf", "svg"):
        a = save_figure(config_figure(run, "sgd"), tmp_path / f"a.{kind}").read_bytes()
        b = save_figure(config_figure(run, "sgd"), tmp_path / f"b.{kind}").read_bytes()
        assert a == b, kind  # no dates or random ids: the same figure gives the same file


@pytest.mark.skipif(not shutil.which("pdftoppm"), reason="pdftoppm (poppler-utils) not installed")
def test_pdf_renders_like_the_png(exported, tmp_path):
    from matplotlib.image import imread

    study, _ = exported
    subprocess.run(["pdftoppm", "-png", "-r", "40", "-singlefile", str(study / "compare-01-sgd-vs-adam.pdf"),
                    str(tmp_path / "page")], check=True)
    pdf_pixels = imread(tmp_path / "page.png")[..., :3]
    png_pixels = imread(study / "compare-01-sgd-vs-adam.png")[..., :3]
    assert pdf_pixels.shape == png_pixels.shape == (200, 320, 3)  # 8 x 5 inches at 40 dpi

    def blocks(img):  # 10x10-pixel means: the drawing, without anti-aliasing differences
        return img.reshape(20, 10, 32, 10, 3).mean(axis=(1, 3))

    same = np.abs(blocks(pdf_pixels) - blocks(png_pixels))
    assert same.mean() < 0.02 and same.max() < 0.2
    other = np.abs(blocks(pdf_pixels) - blocks(imread(study / "config-sgd.png")[..., :3]))
    assert other.mean() > 2 * same.mean()  # another figure is told apart
    band = 0.7 + 0.3 * np.array([0x2e, 0x6f, 0xd9]) / 255  # the report's blue at alpha 0.3 on white
    assert (np.abs(blocks(pdf_pixels) - band).sum(axis=2) < 0.15).sum() >= 5


def test_save_figure_refuses_other_types(tmp_path):
    from matplotlib.figure import Figure

    from optui.export import ExportError

    with pytest.raises(ExportError, match="png, pdf, svg"):
        save_figure(Figure(), tmp_path / "figure.gif")
