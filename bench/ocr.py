"""OCR accuracy and speed on scanned pages rendered from known text, at several render resolutions.

    python bench/ocr.py [--pages 4] [--dpi 100 150 200]

Each page is an A4 image (150 dpi, Liberation Serif 30 px, 12 lines) saved as
an image-only PDF, then read by the loader's OCR path (render with pypdfium2
at the given dpi, RapidOCR). Prints character accuracy (1 - edit distance /
length) and seconds per page for each dpi side by side, with the ratio to the
default (150 dpi) measured in the same run.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

WORDS = ("harbour lighthouse keeper ferry island granite storm ticket crossing tide summer winter "
         "authority survey register coast north south east west metres minutes pounds adults "
         "children weather calm rough beacon lantern tower wall pier quay boat sail").split()


def sentences(rng: random.Random, n: int) -> list[str]:
    out = []
    for _ in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(6, 9))]
        words.insert(rng.randint(1, len(words) - 1), str(rng.randint(2, 1999)))
        out.append(" ".join(words).capitalize() + ".")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=4)
    parser.add_argument("--dpi", type=int, nargs="+", default=[100, 150, 200])
    args = parser.parse_args()

    import io

    from rag.core.config import OcrSettings
    from rag.ingest.loaders import load_document
    from rag.ingest.ocr import ocr_image
    from tests.test_ocr import char_accuracy, page_image

    rng = random.Random(7)
    truth = [sentences(rng, 12) for _ in range(args.pages)]
    images = [page_image(lines) for lines in truth]
    buf = io.BytesIO()
    images[0].save(buf, format="PDF", save_all=True, append_images=images[1:], resolution=150)
    path = Path("/tmp/rag-bench-ocr.pdf")
    path.write_bytes(buf.getvalue())
    ocr_image(page_image(["warm up"], width=300, height=100))  # engine load is not per page

    rows = []
    for dpi in args.dpi:
        started = time.perf_counter()
        doc = load_document(path, ocr=OcrSettings(dpi=dpi))
        seconds = (time.perf_counter() - started) / args.pages
        acc = [char_accuracy("\n".join(lines), doc.text[s:e]) for (_, s, e), lines in zip(doc.pages, truth)]
        rows.append((dpi, sum(acc) / len(acc), min(acc), seconds))
    base = next((r[3] for r in rows if r[0] == 150), rows[0][3])
    print(f"{'dpi':>5} {'accuracy':>9} {'worst':>7} {'s/page':>7} {'vs 150':>7}")
    for dpi, mean, worst, seconds in rows:
        print(f"{dpi:>5} {mean:>9.4f} {worst:>7.4f} {seconds:>7.2f} {seconds / base:>6.2f}x")


if __name__ == "__main__":
    main()
