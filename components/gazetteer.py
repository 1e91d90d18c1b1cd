"""A gazetteer learned from the training set, as features for the NER model.

Two registered pieces:

- factory ``entity_gazetteer``: ``initialize`` counts, over every training document, how
  often each entity string (lower-cased, spaces ignored, so ``Anglo-Dutch`` matches however
  it is tokenised) is tagged PER/ORG/LOC/... and how often the same string occurs untagged.
  At prediction time it marks each token with the longest string found, as a tag such as
  ``B-ORG|high`` (position, majority type, share of that type in the training counts:
  ``high`` >= 0.8, ``mid`` >= 0.4, else ``low``), written to
  ``doc.user_data[GAZETTEER_TAGS_KEY]`` (``"spacy_ner_project.gazetteer"``).
- architecture ``spacy_ner_project.GazetteerEmbed.v1``: concatenates another embedding
  layer (such as ``spacy.MultiHashEmbed.v2``) with hash embeddings of those tags.

A model trained on features computed from its own training documents learns to trust
them more than they deserve: on new text many entities are not in the list. So while
training (the component listed in ``[training] annotating_components``) a training
document is matched against the counts *without its own contribution* (leave one document
out, recognised by its text), and sees its entities only where other documents name them.

Whether it helps is measured on CoNLL-2003 dev: ``benchmarks/conll2003.md``.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Tuple

import numpy
import srsly
from spacy import util
from spacy.language import Language
from spacy.strings import get_string_id
from spacy.tokens import Doc
from spacy.training import Example
from thinc.api import HashEmbed, Model, chain, concatenate, with_array
from thinc.types import Floats2d, Ints2d

# where the component leaves each doc's token tags (one string per token)
GAZETTEER_TAGS_KEY = "spacy_ner_project.gazetteer"
OUTSIDE = "O"


def surface(words: Iterable[str]) -> str:
    """The lookup key of a token sequence: lower-cased, spaces dropped."""
    return "".join(words).lower()


def share_bucket(share: float) -> str:
    return "high" if share >= 0.8 else "mid" if share >= 0.4 else "low"


class Gazetteer:
    """Entity-string counts by label (``OUTSIDE`` counts untagged occurrences).

    ``DEFAULT_MAX_TOKENS`` (the longest entity string counted, in tokens) is also the default
    of the ``entity_gazetteer`` factory's ``max_tokens``.
    """

    DEFAULT_MAX_TOKENS = 8

    def __init__(self, *, max_tokens: int = DEFAULT_MAX_TOKENS) -> None:
        self.max_tokens = max_tokens
        self.counts: Dict[str, Counter] = defaultdict(Counter)
        # per training document (by text digest): what it added, for leave-one-out
        self.contributions: Dict[str, Counter] = {}

    def add_documents(self, docs: Iterable[Doc]) -> None:
        """Count the entities of gold ``docs``, then their untagged occurrences."""
        docs = list(docs)
        per_doc: List[Counter] = []
        for doc in docs:
            added: Counter = Counter()
            for ent in doc.ents:
                if len(ent) <= self.max_tokens:
                    added[(surface(t.text for t in ent), ent.label_)] += 1
            per_doc.append(added)
            for (key, label), n in added.items():
                self.counts[key][label] += n
        for doc, added in zip(docs, per_doc):
            tagged = {(e.start, e.end) for e in doc.ents}
            for start, end, key in self._occurrences(doc):
                if (start, end) not in tagged:
                    added[(key, OUTSIDE)] += 1
                    self.counts[key][OUTSIDE] += 1
            digest = text_digest(doc.text)
            self.contributions[digest] = self.contributions.get(digest, Counter()) + added

    def _occurrences(self, doc: Doc) -> Iterable[Tuple[int, int, str]]:
        """Every (start, end, key) whose key is a known entity string."""
        words = [t.text for t in doc]
        for start in range(len(words)):
            for end in range(start + 1, min(start + self.max_tokens, len(words)) + 1):
                key = surface(words[start:end])
                if key in self.counts:
                    yield start, end, key

    def tags(self, doc: Doc) -> List[str]:
        """One tag per token of ``doc``: ``""`` or ``B-LABEL|bucket`` / ``I-LABEL|bucket``.

        Greedy longest match from the left. A document seen in training is matched
        against the counts without its own contribution.
        """
        own = self.contributions.get(text_digest(doc.text), Counter())
        words = [t.text for t in doc]
        tags = [""] * len(doc)
        start = 0
        while start < len(doc):
            for end in range(min(start + self.max_tokens, len(doc)), start, -1):
                found = self._majority(surface(words[start:end]), own)
                if found:
                    label, bucket = found
                    tags[start] = f"B-{label}|{bucket}"
                    for i in range(start + 1, end):
                        tags[i] = f"I-{label}|{bucket}"
                    start = end
                    break
            else:
                start += 1
        return tags

    def _majority(self, key: str, own: Counter) -> Optional[Tuple[str, str]]:
        counts = self.counts.get(key)
        if counts is None:
            return None
        if own:
            counts = Counter({label: n - own[(key, label)] for label, n in counts.items()})
        entity_counts = {label: n for label, n in counts.items() if label != OUTSIDE and n > 0}
        if not entity_counts:
            return None
        label = max(sorted(entity_counts), key=entity_counts.__getitem__)
        total = sum(n for n in counts.values() if n > 0)
        return label, share_bucket(entity_counts[label] / total)

    def to_dict(self) -> dict:
        return {
            "max_tokens": self.max_tokens,
            "counts": {key: dict(c) for key, c in self.counts.items()},
            "contributions": {
                digest: [[key, label, n] for (key, label), n in c.items()]
                for digest, c in self.contributions.items()
            },
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Gazetteer":
        gazetteer = cls(max_tokens=data["max_tokens"])
        for key, counts in data["counts"].items():
            gazetteer.counts[key] = Counter(counts)
        gazetteer.contributions = {
            digest: Counter({(key, label): n for key, label, n in rows})
            for digest, rows in data["contributions"].items()
        }
        return gazetteer


def text_digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf8"), digest_size=12).hexdigest()


class EntityGazetteer:
    """Pipeline component: gazetteer tags per token in ``doc.user_data`` (see module doc)."""

    def __init__(
        self, nlp: Language, name: str = "entity_gazetteer", *, max_tokens: int = Gazetteer.DEFAULT_MAX_TOKENS
    ) -> None:
        self.name = name
        self.gazetteer = Gazetteer(max_tokens=max_tokens)

    def __call__(self, doc: Doc) -> Doc:
        doc.user_data[GAZETTEER_TAGS_KEY] = self.gazetteer.tags(doc)
        return doc

    def initialize(self, get_examples: Callable[[], Iterable[Example]], *, nlp: Optional[Language] = None) -> None:
        """Count entity strings over all training examples (their gold documents)."""
        max_tokens = self.gazetteer.max_tokens
        self.gazetteer = Gazetteer(max_tokens=max_tokens)
        self.gazetteer.add_documents(eg.reference for eg in get_examples())
        if not self.gazetteer.counts:
            raise ValueError(
                f"[{self.name}] the training examples have no entities: the gazetteer is built "
                "from the gold entities of [corpora.train]."
            )

    def to_bytes(self, *, exclude: Iterable[str] = tuple()) -> bytes:
        return srsly.msgpack_dumps(self.gazetteer.to_dict())

    def from_bytes(self, data: bytes, *, exclude: Iterable[str] = tuple()) -> "EntityGazetteer":
        self.gazetteer = Gazetteer.from_dict(srsly.msgpack_loads(data))
        return self

    def to_disk(self, path: str | Path, *, exclude: Iterable[str] = tuple()) -> None:
        path = util.ensure_path(path)
        path.mkdir(parents=True, exist_ok=True)
        srsly.write_msgpack(path / "gazetteer.msgpack", self.gazetteer.to_dict())

    def from_disk(self, path: str | Path, *, exclude: Iterable[str] = tuple()) -> "EntityGazetteer":
        self.gazetteer = Gazetteer.from_dict(srsly.read_msgpack(util.ensure_path(path) / "gazetteer.msgpack"))
        return self


def make_entity_gazetteer(nlp: Language, name: str, max_tokens: int) -> EntityGazetteer:
    return EntityGazetteer(nlp, name, max_tokens=max_tokens)


def gazetteer_tag_ids(docs: List[Doc], *, missing_ok: bool = False) -> List[Ints2d]:
    """Hash ids of each token's gazetteer tag (one column), from ``doc.user_data``."""
    ids = []
    for doc in docs:
        tags = doc.user_data.get(GAZETTEER_TAGS_KEY)
        if tags is None and missing_ok:
            tags = [""] * len(doc)
        if tags is None or len(tags) != len(doc):
            raise ValueError(
                "spacy_ner_project.GazetteerEmbed.v1 needs the entity_gazetteer component: add "
                "it to [nlp] pipeline before the NER, and for training list it in "
                "[training] annotating_components."
            )
        ids.append(numpy.asarray([get_string_id(tag) for tag in tags], dtype="uint64").reshape(-1, 1))
    return ids


def _tag_ids_forward(model: Model, docs: List[Doc], is_train: bool):
    # spaCy initialises the NER model with forward passes over raw training documents,
    # which no component has annotated: until the first training update, documents
    # without tags read as untagged; from then on (and in a trained, saved pipeline) a
    # missing tag list is an error.
    if is_train:
        model.attrs["updated"] = True
    missing_ok = not model.attrs["updated"]
    ids = [model.ops.asarray2i(a, dtype="uint64") for a in gazetteer_tag_ids(docs, missing_ok=missing_ok)]
    return ids, lambda d_ids: []


def gazetteer_embed_v1(
    embed: Model[List[Doc], List[Floats2d]], width: int = 16, rows: int = 200
) -> Model[List[Doc], List[Floats2d]]:
    """``embed``'s vectors concatenated with ``width``-wide embeddings of gazetteer tags."""
    tags = Model("gazetteer_tag_ids", _tag_ids_forward, attrs={"updated": False})
    tag_embed = chain(tags, with_array(HashEmbed(nO=width, nV=rows, column=0, seed=17)))
    model = concatenate(embed, tag_embed)
    model.name = "gazetteer_embed"
    return model


Language.factory(
    "entity_gazetteer",
    default_config={"max_tokens": Gazetteer.DEFAULT_MAX_TOKENS},
)(make_entity_gazetteer)
