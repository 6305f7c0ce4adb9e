"""`rag eval` on a file-backed dataset (documents.json): real loaders, splits by document, page-level gold.

A tiny set built in tmp_path: two PDFs written with pypdf and one HTML page, fake embeddings and a fake
chat model (canned replies), retrieval by BM25 so that ranks can be checked by hand.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag.cli import app
from rag.core.errors import ConfigError
from rag.eval.datasets import dataset_files, load_dataset, select_split
from rag.eval.runner import files_fingerprint, loader_code_hash, run_eval
from rag.eval.scoring import on_gold_page

REPO = Path(__file__).resolve().parent.parent


def make_pdf(pages: list[list[str]]) -> bytes:
    """A PDF with one Helvetica text line per entry, one page per inner list (pypdf's writer)."""
    from pypdf import PdfWriter
    from pypdf.generic import ContentStream, DictionaryObject, NameObject

    writer = PdfWriter()
    font = DictionaryObject({NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
                             NameObject("/BaseFont"): NameObject("/Helvetica")})
    for lines in pages:
        page = writer.add_blank_page(612, 792)
        page[NameObject("/Resources")] = DictionaryObject({NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})})
        ops = ["BT", "/F1 12 Tf", "14 TL", "72 720 Td", *(f"({line}) Tj T*" for line in lines), "ET"]
        stream = ContentStream(None, None)
        stream.set_data("\n".join(ops).encode("latin-1"))
        page.replace_contents(stream)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


# alpha (dev): page 3 repeats the question's words without the value, page 2 holds it, so BM25 ranks page 3 first
ALPHA = make_pdf([
    ["Alpha manual. Introduction to the widget family and its history."],
    ["Performance limits.", "The top speed of the alpha widget is 42 km/h on flat ground."],
    ["Alpha widget maximum speed: the alpha widget maximum speed depends on the tyres fitted."],
])
BETA = make_pdf([["Beta gadget manual.", "The beta gadget weighs 7 kg without its battery."]])  # test split
GAMMA = """<!doctype html><html><head><title>Gamma formats</title></head><body><main>
<h1>Gamma format codes</h1>
<p>Each gamma format code packs a value of a fixed size.</p>
<table><tr><th>Code</th><th>Meaning</th><th>Size in bytes</th></tr>
<tr><td>q</td><td>long long</td><td>8</td></tr>
<tr><td>h</td><td>short</td><td>2</td></tr></table>
</main></body></html>"""

FILES = {"alpha": ("pdf", ALPHA), "beta": ("pdf", BETA), "gamma": ("html", GAMMA.encode())}


def q(qid, question, answers, doc, pages, kind, split, answerable=True):
    return {"qid": qid, "question": question, "answers": answers, "gold_doc_ids": [doc], "gold_pages": pages,
            "answerable": answerable, "kind": kind, "split": split}


QUESTIONS = [
    q("a1", "What is the alpha widget maximum speed?", ["42 km/h"], "alpha", [2], "fact", "dev"),
    q("g1", "How many bytes does the gamma format code q pack?", ["8", "eight"], "gamma", [], "table", "dev"),
    q("g2", "How many bytes does the gamma format code z pack?", [], "gamma", [], "table", "dev", answerable=False),
    q("b1", "How much does the beta gadget weigh?", ["7 kg"], "beta", [1], "fact", "test"),
]
# one canned reply per dev question, in order
REPLIES = [
    "Answer: 42 km/h\nDetails: The top speed of the alpha widget is 42 km/h on flat ground [2].",
    "Answer: 8\nDetails: The gamma format code q packs 8 bytes [1].",
    "Answer: I don't know based on the documents.",
]


def write_dataset(tmp_path: Path, *, fetch_script: bool = True) -> tuple[Path, Path]:
    """(dataset folder, files folder) of the tiny file-backed set."""
    folder, files = tmp_path / "tinyfiles", tmp_path / "cache" / "files"
    folder.mkdir()
    files.mkdir(parents=True)
    docs = []
    for doc_id, (fmt, data) in FILES.items():
        (files / f"{doc_id}.{fmt}").write_bytes(data)
        docs.append({"doc_id": doc_id, "format": fmt, "title": doc_id.title(), "sha256": hashlib.sha256(data).hexdigest()})
    (folder / "documents.json").write_text(json.dumps(docs))
    (folder / "questions.jsonl").write_text("".join(json.dumps(x) + "\n" for x in QUESTIONS))
    (folder / "split.json").write_text(json.dumps({"note": "by document", "dev": ["alpha", "gamma"], "test": ["beta"]}))
    if fetch_script:
        (folder / "fetch.py").write_text("# fetches the documents\n")
    return folder, files


@pytest.fixture
def settings(fake_settings):
    return fake_settings.model_copy(update={
        "llm": fake_settings.llm.model_copy(update={"fake_responses": REPLIES}),
        "answer": fake_settings.answer.model_copy(update={"min_relevance": -1.0}),  # fake vectors mean nothing
    })


def ingested_stems(settings) -> set[str]:
    """The file stems of every document in every eval collection of this home."""
    from rag.serve.api import DocQA

    qa = DocQA(settings)
    return {Path(s.source).stem for name in qa.collections() if name.startswith("eval-")
            for s in qa.with_collection(name).sources()}


def test_load_reads_documents_and_page_gold(tmp_path):
    folder, _ = write_dataset(tmp_path)
    data = load_dataset(folder)
    assert data.from_files and [d["doc_id"] for d in data.corpus] == ["alpha", "beta", "gamma"]
    a1 = data.questions[0]
    assert a1["gold_pages"] == [2] and a1["kind"] == "fact" and a1["split"] == "dev"
    dev = select_split(data, folder, "dev")
    assert [d["doc_id"] for d in dev.corpus] == ["alpha", "gamma"] and [x["qid"] for x in dev.questions] == ["a1", "g1", "g2"]


def test_dev_run_ingests_only_dev_documents_and_scores_pages(settings, tmp_path):
    folder, files = write_dataset(tmp_path)
    result = run_eval(settings, folder, split="dev", files=files, retrieval_only=True, mode="bm25", k=3)
    assert ingested_stems(settings) == {"alpha", "gamma"}  # the test split's beta.pdf never entered the index
    assert result.config["documents"] == "alpha, gamma" and result.metrics["ingest.documents"] == 2
    rows = {r["qid"]: r for r in result.per_question}
    assert set(rows) == {"a1", "g1"}  # answerable questions of dev only
    # a1, by hand: BM25 puts page 3 (the question's words, no value) first and page 2 (42 km/h) second;
    # both are the gold document, so doc recall@1 = 1, but the gold page comes at rank 2
    assert rows["a1"]["retrieved"][:2] == ["alpha", "alpha"] and rows["a1"]["retrieved_pages"][:2] == [3, 2]
    assert rows["a1"]["hit_rank"] == 1 and rows["a1"]["page_hit_rank"] == 2
    # g1 (HTML, no pages): the first gamma chunk holding "8" is a hit
    assert rows["g1"]["page_hit_rank"] is not None and rows["g1"]["retrieved_pages"][0] is None
    m = result.metrics
    assert m["retrieval.recall@1"] == 1.0
    assert m["retrieval.page_recall@1"] == (rows["g1"]["page_hit_rank"] == 1) / 2
    assert m["retrieval.page_recall@5"] == m["retrieval.page_recall@10"] == 1.0
    assert result.to_json()["by_kind"]["fact"]["page_recall@5"] == 1.0


def test_on_gold_page_rules():
    pdf_q = q("x", "?", ["42 km/h"], "alpha", [2], "fact", "dev")
    assert on_gold_page(pdf_q, "alpha", 2, "no value here")             # the page decides, not the text
    assert not on_gold_page(pdf_q, "alpha", 3, "42 km/h")
    assert on_gold_page(pdf_q, "alpha", 1, "", end_page=2)              # a passage running onto the gold page
    assert not on_gold_page(pdf_q, "beta", 2, "42 km/h")                # not the gold document
    html_q = q("y", "?", ["8", "eight"], "gamma", [], "table", "dev")
    assert on_gold_page(html_q, "gamma", None, "| q | long long | 8 |")
    assert not on_gold_page(html_q, "gamma", None, "48 bytes, eight of them")  # the canonical answer, as a whole number


def test_answered_run_has_page_citations_and_a_by_kind_table(settings, tmp_path):
    from rag.eval.report import render_report

    folder, files = write_dataset(tmp_path)
    result = run_eval(settings, folder, split="dev", files=files, mode="bm25", k=3)
    rows = {r["qid"]: r for r in result.per_question}
    assert [r["kind"] for r in result.per_question] == ["fact", "table", "table"]
    assert rows["g2"]["abstained"] and result.metrics["abstention.unanswerable_abstained"] == 1.0
    # citations name doc_ids, not file paths
    assert {c["source"] for r in rows.values() for c in r["citations"]} <= {"alpha", "gamma"}
    # a1 cites passage [2], page 2 of alpha (the gold page); g1 cites the gamma chunk holding "8"
    assert rows["a1"]["correct"] and rows["a1"]["page_cited"] and [c["source"] for c in rows["a1"]["citations"]] == ["alpha"]
    assert rows["g1"]["correct"] and rows["g1"]["page_cited"]
    assert result.metrics["citation.page_correct"] == 1.0
    kinds = result.to_json()["by_kind"]
    assert list(kinds) == ["table", "fact"]
    assert kinds["table"]["answerable"] == 1 and kinds["table"]["unanswerable"] == 1
    assert kinds["table"]["unanswerable_abstained"] == 1.0 and kinds["fact"]["unanswerable_abstained"] is None
    assert kinds["table"]["short_em"] == rows["g1"]["short_em"]
    report = render_report(result)
    assert "## By kind" in report and "| table |" in report and "`page_recall@5`" in report
    assert "by kind" in result.table()


def test_gold_passages_ask_within_the_gold_file(settings, tmp_path):
    folder, files = write_dataset(tmp_path)
    result = run_eval(settings, folder, split="dev", files=files, mode="bm25", k=3, gold_passages=True)
    for row in result.per_question:
        assert set(row["passages"]) == set(row["gold_docs"]), row["qid"]  # doc_ids, mapped to and from the files


def test_kind_selects_questions_but_not_documents(settings, tmp_path):
    folder, files = write_dataset(tmp_path)
    result = run_eval(settings, folder, split="dev", kind="table", files=files, retrieval_only=True, mode="bm25")
    assert [r["qid"] for r in result.per_question] == ["g1"] and result.config["kind"] == "table"
    assert result.config["documents"] == "alpha, gamma"  # the same index as the whole dev split
    with pytest.raises(ConfigError, match="kind 'poem'.*table"):
        run_eval(settings, folder, split="dev", kind="poem", files=files, retrieval_only=True)


def test_a_missing_file_names_the_fetch_command(settings, tmp_path):
    folder, files = write_dataset(tmp_path)
    (files / "gamma.html").unlink()
    with pytest.raises(ConfigError, match=r"gamma\.html.*fetch\.py --dest"):
        run_eval(settings, folder, split="dev", files=files, retrieval_only=True)
    # a missing test-split file does not stop a dev run
    (files / "beta.pdf").unlink()
    (files / "gamma.html").write_text(GAMMA)
    assert run_eval(settings, folder, split="dev", files=files, retrieval_only=True).metrics["ingest.documents"] == 2


def test_a_changed_file_is_refused(settings, tmp_path):
    folder, files = write_dataset(tmp_path)
    (files / "alpha.pdf").write_bytes(BETA)
    with pytest.raises(ConfigError, match="sha256"):
        run_eval(settings, folder, split="dev", files=files, retrieval_only=True)


def test_the_fingerprint_covers_files_and_loader_code(settings, tmp_path):
    folder, files = write_dataset(tmp_path)
    docs = dataset_files(select_split(load_dataset(folder), folder, "dev"), files, folder)
    package = tmp_path / "rag"
    for name in ("ingest", "text", "answer"):
        shutil.copytree(REPO / "rag" / name, package / name, ignore=shutil.ignore_patterns("__pycache__"))
    code = package / "ingest"
    assert loader_code_hash(package) == loader_code_hash()  # it hashes the real sources
    before = files_fingerprint(settings, docs, loader_code_hash(package))
    (code / "watch.py").write_text("# not extraction code\n")
    (package / "answer" / "context.py").write_text("# what the model is shown: no part of a chunk\n")
    assert files_fingerprint(settings, docs, loader_code_hash(package)) == before
    with open(code / "loaders" / "pdf.py", "a", encoding="utf-8") as fh:
        fh.write("\n# a changed extractor\n")
    changed = files_fingerprint(settings, docs, loader_code_hash(package))
    assert changed != before
    (code / "tables.py").write_text("# another table reader\n")
    again = files_fingerprint(settings, docs, loader_code_hash(package))
    assert again not in (before, changed)
    (code / "layout2.py").write_text("# a new extraction module counts too\n")
    fourth = files_fingerprint(settings, docs, loader_code_hash(package))
    assert fourth not in (before, changed, again)
    with open(package / "text" / "sentences.py", "a", encoding="utf-8") as fh:  # chunks end at sentence ends
        fh.write("\n# a changed sentence splitter\n")
    assert files_fingerprint(settings, docs, loader_code_hash(package)) not in (before, changed, again, fourth)
    other = [docs[0].__class__(d.doc_id, d.path, "0" * 64) if d.doc_id == "alpha" else d for d in docs]
    assert files_fingerprint(settings, other, loader_code_hash()) != files_fingerprint(settings, docs, loader_code_hash())


def test_cli_eval_on_files(tmp_path, monkeypatch):
    monkeypatch.setenv("RAG_EMBEDDING__PROVIDER", "fake")
    monkeypatch.setenv("RAG_EMBEDDING__MODEL_NAME", "fake")
    folder, files = write_dataset(tmp_path)
    out = tmp_path / "dev.json"
    result = CliRunner().invoke(app, ["eval", "--dataset", str(folder), "--files", str(files), "--split", "dev",
                                      "--retrieval-only", "--mode", "bm25", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "retrieval.page_recall@5" in result.output and "by kind" in result.output
    assert json.loads(out.read_text())["metrics"]["ingest.documents"] == 2
    (files / "alpha.pdf").unlink()
    result = CliRunner().invoke(app, ["eval", "--dataset", str(folder), "--files", str(files), "--split", "dev",
                                      "--retrieval-only"])
    assert result.exit_code != 0 and "fetch.py" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("name", ["manuals", "postgres", "specs"])
def test_the_real_document_sets_are_well_formed_and_split_by_document(name):
    # fields, unique ids, known gold documents, each question on its document's side of the split; the text
    # checks need the fetched documents (`fetch.py`) and are skipped here
    import subprocess
    import sys

    check = subprocess.run([sys.executable, str(REPO / "evals" / "datasets" / name / "check.py"), "--no-text"],
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.rstrip().endswith("OK")
    dataset = load_dataset(REPO / "evals" / "datasets" / name)
    dev, test = (select_split(dataset, REPO / "evals" / "datasets" / name, side) for side in ("dev", "test"))
    assert dev.questions and test.questions
    assert not {q["qid"] for q in dev.questions} & {q["qid"] for q in test.questions}


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb (a Debian-like system), as fetch.py does")
def test_fetch_unpacks_a_compressed_document_and_checks_what_it_unpacked(tmp_path):
    """Debian ships large documents gzipped (`policy.pdf.gz`): the document's checksum is that of the document, a
    mismatch leaves no file behind."""
    import gzip
    import hashlib
    import importlib.util
    import subprocess

    spec = importlib.util.spec_from_file_location("manuals_fetch", REPO / "evals" / "datasets" / "manuals" / "fetch.py")
    fetch = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fetch)
    content = b"%PDF-1.4 a harbour manual"
    root = tmp_path / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text("Package: harbour-doc\nVersion: 1.0\nArchitecture: all\n"
                                             "Maintainer: Nobody <nobody@example.org>\nDescription: test\n")
    (root / "usr" / "share" / "doc").mkdir(parents=True)
    (root / "usr" / "share" / "doc" / "manual.pdf.gz").write_bytes(gzip.compress(content))
    dest = tmp_path / "cache"
    (dest / "debs").mkdir(parents=True)
    subprocess.run(["dpkg-deb", "--build", str(root), str(dest / "debs" / "harbour-doc_1.0_all.deb")], check=True,
                   capture_output=True)
    doc = {"doc_id": "manual", "package": "harbour-doc", "version": "1.0", "format": "pdf",
           "path_in_package": "usr/share/doc/manual.pdf.gz", "sha256": hashlib.sha256(content).hexdigest()}
    assert fetch.fetch(doc, dest) == "fetched"
    assert (dest / "files" / "manual.pdf").read_bytes() == content
    assert fetch.fetch(doc, dest) == "present"
    wrong = {**doc, "doc_id": "other", "sha256": "0" * 64}
    with pytest.raises(fetch.FetchError, match="sha256"):
        fetch.fetch(wrong, dest)
    assert sorted(p.name for p in (dest / "files").iterdir()) == ["manual.pdf"]
