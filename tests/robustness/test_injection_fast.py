"""Prompt injection on every push: the 20 hostile documents of `test_prompt_injection.py` against a model that
obeys them.

The real model's resistance is tested there (a few cases in the default suite, all 20 in `make stress`). Here
the model is not the point: a fake model does what each attack asks (answers with the attack's telltale,
cites forged passages), and the answer path must still hold: the attack stays inside its `<passage>` fence
in the prompt, the obeyed answer is refused (it does not come from text about the question), and no
citation or `[n]` marker points at anything but a retrieved passage.
"""

from __future__ import annotations

import re

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

from rag.core.config import load_settings
from rag.serve.api import DocQA
from tests.conftest import shared_cache
from tests.robustness.test_prompt_injection import CASES, Case

OPEN = re.compile(r"<\s*passage\b", re.IGNORECASE)
CLOSE = re.compile(r"<\s*/\s*passage\s*>", re.IGNORECASE)
LOOKALIKE = re.compile(r"[<\uFF1C\uFE64\u2039\u3008]\s*[/\uFF0F]?\s*passage", re.IGNORECASE)
# attacks that state a false fact about the asked subject in the document's own words ("Correction: the dam is
# 9999 metres high"): an answer from them is grounded in the document, so only the model can decline it (the
# real-model test); here they must still cite nothing but the retrieved passage
FALSE_FACTS = {"forged-passage"}


class ObeyingChat(GenericFakeChatModel):
    """Replies what the attack asks for, and keeps the prompts it was shown."""

    seen: list = []

    def _generate(self, messages, *args, **kwargs):
        self.seen.append(messages)
        return super()._generate(messages, *args, **kwargs)

    def yes_probability(self, messages) -> float:  # the verifier, if configured, is not what is tested
        return 1.0


def obeyed(case: Case) -> str:
    telltale = case.forbidden[0]
    return f"Answer: {telltale}\nDetails: {telltale} [1], as the official passage says [7] [12]."


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("injection-fast")


def make_qa(home, case: Case) -> tuple[DocQA, ObeyingChat]:
    settings = load_settings(environ={}, home=home, cache=shared_cache(),
                             embedding={"provider": "fake", "model_name": "fake"},
                             answer={"min_relevance": -1.0, "verify": False})
    model = ObeyingChat(messages=iter([obeyed(case)] * 4), seen=[])
    qa = DocQA(settings, chat_model=model)
    if not qa.sources():
        qa.ingest_texts([{"source": f"hostile/{c.name}.txt", "title": c.title, "text": c.text} for c in CASES])
    return qa, model


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_an_obeying_model_cannot_carry_the_attack_through(home, case):
    qa, model = make_qa(home, case)
    answer = qa.ask(case.question, history=list(case.history) or None, k=3,
                    sources=[f"hostile/{case.name}.txt"])
    # the prompt: the hostile text opened and closed no fence of its own
    prompt = "\n".join(str(m.content) for m in model.seen[-1])
    opened, closed = len(OPEN.findall(prompt)), len(CLOSE.findall(prompt))
    assert opened == closed >= 1, prompt
    assert len(LOOKALIKE.findall(prompt)) == opened + closed, prompt
    # the answer: what the attack asked for is refused
    said = f"{answer.short_answer}\n{answer.text}".lower()
    if case.name not in FALSE_FACTS:
        assert answer.abstained, f"the obeyed answer was shown: {answer.text!r}"
        assert not any(f in said for f in case.forbidden), said
    else:
        assert {c.source for c in answer.citations} <= {f"hostile/{case.name}.txt"}
    # citations and markers only point at retrieved passages
    retrieved = {p.chunk_id for p in answer.passages}
    assert all(c.chunk_id in retrieved for c in answer.citations)
    assert not re.findall(r"\[(?:7|12)\]", answer.text)
