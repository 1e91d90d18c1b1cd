"""Write the demo corpus: small invented newswire in CoNLL-2003 format (IOB2, -DOCSTART-).

Every sentence comes from the templates and name lists below, written for this project
(no CoNLL-2003 text). The output is deterministic, so the committed files can be
regenerated and checked: ``python assets/make_demo_corpus.py assets/demo``.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Dict, List, Tuple

PER = ["Anna Kowalski", "Rafael Ortega", "Mei Lin", "Tomas Berg", "Grace Okafor", "Hiro Tanaka",
       "Lena Fischer", "Omar Haddad", "Priya Nair", "Jonas Lind", "Sofia Rossi", "Daniel Mbeki",
       "Claire Dubois", "Ivan Petrov", "Nadia Rahman", "Marcus Webb", "Elena Vasquez", "Kofi Mensah",
       "Ingrid Holm", "Samuel Adeyemi", "Yuki Sato", "Pedro Alves", "Hannah Novak", "Arjun Mehta"]
SURNAMES = [p.split()[-1] for p in PER]
ORG = ["Northwind Bank", "Helix Motors", "Bluebird Airlines", "the Atlas Group", "Corvid Systems",
       "Riverside United", "the Harbour Trust", "Quantum Foods", "Stellar Mining", "Apex Telecom",
       "the National Rail Board", "Greenfield Energy", "Marlow Insurance", "Orion Pharmaceuticals",
       "the Coastal League", "Vantage Media", "Summit Rovers", "Ironbridge Steel"]
LOC = ["Valmora", "Port Elden", "Kestrel Bay", "Norhaven", "Lake Arden", "Brightwater", "Eastmarch",
       "the Corran Valley", "Saint Ives", "Tarrow", "New Calder", "Dunmore", "the Silver Coast",
       "Ashford", "Marbella Heights", "Oslo", "Lisbon", "Nairobi", "Osaka", "Toronto"]
MISC = ["Valmoran", "Norhavenese", "the Harvest Cup", "the Winter Games", "Eldenian", "the Coastal Open",
        "Tarrowese", "the Spring Festival", "the Grand Regatta", "Calderian", "the Northern Derby"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
NUMS = ["two", "three", "five", "12", "40", "7.5", "1,200", "98"]

# {X} slots are entities; [day] and [num] are plain words.
TEMPLATES = [
    "{PER} , the chief executive of {ORG} , said on [day] that profits rose [num] percent .",
    "{ORG} shares fell [num] percent in {LOC} after {PER} resigned .",
    "{PER} scored twice as {ORG} beat {ORG} [num] - 1 in {LOC} .",
    "The {MISC} delegation arrived in {LOC} on [day] for talks with {PER} .",
    "{PER} won {MISC} in {LOC} , beating {PER} in the final .",
    "Police in {LOC} said [num] people were hurt when a bus crashed near {LOC} .",
    "{ORG} agreed to buy {ORG} for [num] million dollars , {PER} told reporters .",
    "{MISC} officials met {PER} of {ORG} in {LOC} .",
    "Rain delayed the start of {MISC} in {LOC} on [day] .",
    "{PER} , a {MISC} citizen , was arrested in {LOC} .",
    "Traders in {LOC} said {ORG} would report results on [day] .",
    "{SURNAME} told {ORG} the plan would cost [num] million .",
    "The {MISC} government said it would open an embassy in {LOC} .",
    "{ORG} coach {PER} said his team was ready for {MISC} .",
    "Flights between {LOC} and {LOC} were cancelled by {ORG} .",
    "{PER} joined {ORG} from {ORG} last season .",
    "Shares in {ORG} closed at [num] in {LOC} trading .",
    "{SURNAME} , who lives in {LOC} , denied the report .",
    "Temperatures in {LOC} reached [num] degrees on [day] .",
    "The talks , chaired by {PER} , will resume in {LOC} next week .",
    "{ORG} said it had hired {PER} as finance director .",
    "About [num] {MISC} fans travelled to {LOC} for the match .",
    "{PER} and {PER} will meet in {LOC} on [day] .",
    "Exports from {LOC} rose [num] percent , {ORG} said .",
]


def fill(template: str, rng: random.Random) -> List[Tuple[str, str]]:
    """Tokens with IOB2 tags for one filled template."""
    tagged: List[Tuple[str, str]] = []
    pools: Dict[str, List[str]] = {"PER": PER, "ORG": ORG, "LOC": LOC, "MISC": MISC, "SURNAME": SURNAMES}
    for piece in template.split():
        if piece.startswith("{") and piece.endswith("}"):
            slot = piece[1:-1]
            label = "PER" if slot == "SURNAME" else slot
            words = rng.choice(pools[slot]).split()
            if words[0] == "the":  # "the" stays outside the entity, as in CoNLL-2003
                tagged.append(("the", "O"))
                words = words[1:]
            tagged.extend((w, ("B-" if i == 0 else "I-") + label) for i, w in enumerate(words))
        elif piece == "[day]":
            tagged.append((rng.choice(DAYS), "O"))
        elif piece == "[num]":
            tagged.append((rng.choice(NUMS), "O"))
        else:
            tagged.append((piece, "O"))
    if tagged[0][0] == "the":
        tagged[0] = ("The", "O")
    return tagged


def write_split(path: Path, *, n_docs: int, sents_per_doc: int, seed: int) -> None:
    rng = random.Random(seed)
    lines: List[str] = []
    for _ in range(n_docs):
        lines += ["-DOCSTART- -X- -X- O", ""]
        for _ in range(sents_per_doc):
            for word, tag in fill(rng.choice(TEMPLATES), rng):
                lines.append(f"{word} _ _ {tag}")
            lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")


def main(out_dir: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_split(out / "train.iob", n_docs=30, sents_per_doc=8, seed=1)
    write_split(out / "dev.iob", n_docs=8, sents_per_doc=8, seed=2)
    write_split(out / "test.iob", n_docs=8, sents_per_doc=8, seed=3)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).parent / "demo"))
