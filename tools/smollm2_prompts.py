"""Prompt sets for distilling a SmolLM2-135M-Instruct draft (tools/smollm2_draft.py): offline, seeded.

``make_prompts(split, n, seed)`` returns ``n`` prompts, each a dict ``{"kind": "chat" | "raw",
"text": str, "template": str}``. A chat prompt is a user message (the caller applies the target's
chat template); a raw prompt is text to continue as is.

Two disjoint template families: ``train`` and ``heldout``. No template appears in both, and the
held-out family also draws its topics from a held-out slice of every topic list (every 5th entry
of the shuffled-by-name lists below goes to held-out), so a held-out prompt shares neither its
template nor its topic with any training prompt. Sources, all offline:

* hand-written topic lists (science, history, everyday life, technology, programming tasks) x
  instruction templates (questions, explanations, lists, how-tos, rewriting, code tasks, ...);
* the Debian package descriptions in ``/var/lib/dpkg/status`` (what is X, summarise, rewrite);
* the summaries of the installed PyPI distributions (``importlib.metadata``);
* the running interpreter's standard library: function names, docstrings and code snippets
  (explain, document, test, continue), plus raw code/docstring continuations.

Deterministic for a given ``seed`` and machine (the Debian and PyPI lists are whatever is
installed, sorted by name).
"""

from __future__ import annotations

import ast
import importlib.metadata
import random
import sysconfig
import textwrap
import zlib
from pathlib import Path

SCIENCE = """photosynthesis; black holes; plate tectonics; the water cycle; DNA replication; vaccines;
climate change; the immune system; quantum entanglement; the theory of evolution; volcanoes;
earthquakes; the periodic table; gravity; the speed of light; antibiotics; the human heart;
neurons; the greenhouse effect; ocean tides; the Big Bang; solar eclipses; magnetism;
electricity; nuclear fusion; nuclear fission; the carbon cycle; cell division; enzymes;
the nitrogen cycle; rainbows; sound waves; thermodynamics; entropy; chemical bonds; acids and bases;
the moon's phases; Mars; Jupiter; comets; stars; galaxies; dark matter; bacteria; viruses;
fungi; coral reefs; rainforests; deserts; glaciers; hurricanes; tornadoes; lightning;
the ozone layer; renewable energy; solar panels; wind turbines; batteries; semiconductors;
the human brain; sleep; memory; digestion; the skeleton; muscles; blood types; genetics;
bees; ants; whales; dolphins; octopuses; birds' migration; dinosaurs; fossils; the ice ages;
erosion; soil; photosynthesis in algae; the food chain; biodiversity; endangered species;
recycling; plastic pollution; air pollution; water purification; earth's atmosphere; auroras;
telescopes; microscopes; the scientific method; statistics; probability; prime numbers;
fractions; geometry; algebra; calculus; the Pythagorean theorem; infinity; logarithms""".split(";")

HISTORY = """the Roman Empire; ancient Egypt; the Renaissance; the Industrial Revolution; the printing press;
the French Revolution; World War I; World War II; the Cold War; the Moon landing; the Silk Road;
the Great Wall of China; the Maya civilization; the Vikings; the Ottoman Empire; ancient Greece;
the invention of the telephone; the history of the internet; the invention of writing;
the Black Death; the age of exploration; the American Revolution; the fall of the Berlin Wall;
the Olympic Games; the history of chess; the invention of paper; the steam engine;
the history of medicine; the history of mathematics; the history of computers; the Aztecs;
the Inca Empire; the Meiji Restoration; the history of democracy; the abolition of slavery;
the women's suffrage movement; the history of aviation; the history of photography;
the history of music; the history of coffee; the history of tea; the history of money""".split(";")

EVERYDAY = """cooking pasta; baking bread; making coffee; growing tomatoes; caring for a dog; caring for a cat;
saving money; making a budget; learning a language; studying for exams; time management;
staying healthy; running a marathon; yoga; meditation; getting better sleep; writing a resume;
job interviews; public speaking; making friends; planning a trip; packing for travel;
camping; hiking safely; riding a bicycle; learning to swim; cleaning a kitchen; organizing a room;
reducing stress; drinking enough water; eating vegetables; writing a thank-you note;
starting a small business; negotiating a salary; reading more books; learning to draw;
playing the guitar; taking better photos; gardening; composting; saving energy at home;
fixing a flat tire; first aid for burns; choosing a laptop; keeping passwords safe;
working from home; teaching children to read; a healthy breakfast; making soup; hosting a party""".split(";")

TECH = """machine learning; neural networks; the cloud; databases; operating systems; compilers;
version control with git; the HTTP protocol; DNS; encryption; public-key cryptography; hashing;
blockchains; web browsers; search engines; APIs; REST; JSON; XML; SQL; Linux; the command line;
virtual machines; containers; Docker; Kubernetes; unit testing; debugging; recursion;
sorting algorithms; binary search; hash tables; linked lists; trees; graphs; dynamic programming;
big-O notation; garbage collection; threads and processes; deadlocks; caching; CPUs; GPUs;
memory; hard drives; SSDs; Wi-Fi; Bluetooth; 5G networks; open-source software; Python;
JavaScript; C; Rust; Java; regular expressions; object-oriented programming; functional programming;
type systems; design patterns; agile development; code review; computer viruses; firewalls;
speculative decoding; large language models; tokenization; transformers in AI; computer vision""".split(";")

CODE_TASKS = """reverses a string; checks whether a number is prime; computes the factorial of n;
returns the n-th Fibonacci number; counts the vowels in a string; finds the largest element of a list;
removes duplicates from a list; merges two sorted lists; checks whether a string is a palindrome;
sorts a list of dictionaries by a key; reads a text file and counts its words; flattens a nested list;
computes the average of a list of numbers; converts Celsius to Fahrenheit; finds the second largest number;
checks whether two strings are anagrams; computes the greatest common divisor; implements binary search;
implements bubble sort; implements a stack class; implements a queue class; parses a CSV file;
counts the frequency of each word; validates an email address with a regular expression;
generates all permutations of a list; transposes a matrix; multiplies two matrices;
finds the intersection of two lists; capitalizes every word in a sentence; computes the sum of digits;
converts a decimal number to binary; checks for balanced parentheses; rotates a list by k positions;
finds the longest word in a sentence; computes compound interest; implements a simple linked list;
returns the squares of the even numbers in a list; downloads nothing but prints a multiplication table;
reverses the words of a sentence; checks whether a year is a leap year; implements a counter with a dict;
chunks a list into pieces of size n; finds the missing number in 1..n; computes a running total;
implements memoization with a decorator; reads JSON from a file; writes a list of rows to a CSV file""".split(";")

LANGS = ["Python", "Python", "Python", "JavaScript", "C", "Java", "Rust", "Go", "C++", "Bash"]

STYLES = ["a five-year-old", "a high-school student", "a beginner", "an expert", "a busy manager",
          "a curious teenager", "someone who has never heard of it", "a university student"]

TEXTS = """The meeting has been moved to Thursday because the projector in room 4 is broken and nobody could fix it before Tuesday.
I think that we should maybe try to go to the beach this weekend if the weather is good, but if it rains we could go to the museum instead.
Our company sells handmade wooden furniture. Every chair is made by one carpenter from start to finish, using oak from local forests.
The new update makes the app faster, fixes a bug where photos were uploaded twice, and adds a dark mode that many users asked for.
Dear team, thanks for all your hard work this quarter. Sales went up by 12 percent and two new customers signed long contracts.
The library will be closed on Monday for cleaning. Books that are due on Monday can be returned on Tuesday without a fine.
Water boils at 100 degrees Celsius at sea level, but at the top of a high mountain it boils at a lower temperature because the air pressure is lower.
Please remember to turn off the lights when you leave the office, and make sure that the windows are closed.
The cat sat on the warm windowsill all afternoon, watching the birds in the garden and ignoring everyone who called her name.
Learning to play an instrument takes patience. Practice a little every day rather than a lot once a week.
Our train was delayed by two hours, so we missed the connection and had to spend the night in a small hotel near the station.
The recipe needs two cups of flour, one egg, a pinch of salt and enough milk to make a smooth batter.""".split("\n")

# Template families: {x} topic, {s} audience, {t} text, {lang}, {task}, {name}, {doc}, {code}.
TRAIN_TEMPLATES = {
    "what_is": (["science", "history", "tech", "everyday"], "What is {x}?"),
    "explain": (["science", "tech"], "Explain {x} in simple terms."),
    "explain_to": (["science", "tech", "history"], "Explain {x} to {s}."),
    "why_matters": (["science", "history", "tech"], "Why is {x} important?"),
    "facts": (["science", "history", "tech", "everyday"], "Give me three interesting facts about {x}."),
    "list_tips": (["everyday"], "List five tips for {x}."),
    "howto": (["everyday"], "How do I get started with {x}?"),
    "short_essay": (["science", "history", "everyday"], "Write a short paragraph about {x}."),
    "pros_cons": (["tech", "everyday"], "What are the pros and cons of {x}?"),
    "history_of": (["science", "tech"], "Tell me about the history of {x}."),
    "quiz": (["science", "history"], "Write a short quiz with three questions about {x}."),
    "poem": (["science", "everyday"], "Write a short poem about {x}."),
    "write_fn": (["code"], "Write a {lang} function that {task}"),
    "explain_code_task": (["code"], "How would you write a program that {task} Explain the steps."),
    "rewrite_formal": (["text"], "Rewrite this text in a more formal tone:\n\n{t}"),
    "summarize": (["text"], "Summarize the following text in one sentence:\n\n{t}"),
    "pkg_what": (["debian"], "What is the {name} package used for? Its description says: {doc}"),
    "pkg_rewrite": (["debian"], "Rewrite this software description for a non-technical reader:\n\n{doc}"),
    "pypi_what": (["pypi"], "What does the Python library {name} do? It is described as: {doc}"),
    "stdlib_explain": (["stdlib_fn"], "Explain what the Python function `{name}` does.\n\n{doc}"),
    "stdlib_code": (["stdlib_code"], "Explain this Python code:\n\n```python\n{code}\n```"),
    "raw_code": (["stdlib_code"], "{code}"),
    "raw_doc": (["stdlib_fn"], '"""{doc}'),
}
HELDOUT_TEMPLATES = {
    "describe": (["science", "history", "tech", "everyday"], "Can you describe {x} briefly?"),
    "steps": (["everyday"], "What are the steps for {x}?"),
    "compare_audience": (["science", "tech"], "I am {s}. Help me understand {x}."),
    "mistakes": (["everyday", "tech"], "What are common mistakes people make with {x}?"),
    "code_fn_doc": (["code"], "Create a {lang} program that {task} Add comments."),
    "simplify": (["text"], "Make this text simpler and shorter:\n\n{t}"),
    "pkg_explain": (["debian"], "Explain to a new Linux user what {name} is. Description: {doc}"),
    "stdlib_doc": (["stdlib_code"], "Write a docstring for this Python code:\n\n```python\n{code}\n```"),
}


def _split(items: list, split: str) -> list:
    """Stable topic split: an item is held out when crc32(item) % 5 == 0."""
    keep = [x.strip() for x in items if x.strip()]
    held = [x for x in keep if zlib.crc32(x.encode()) % 5 == 0]
    return held if split == "heldout" else [x for x in keep if x not in held]


def _debian() -> list:
    out, name, desc = [], None, None
    path = Path("/var/lib/dpkg/status")
    if not path.is_file():
        return out
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("Package: "):
            name = line[9:].strip()
        elif line.startswith("Description: ") and name:
            desc = line[13:].strip()
            out.append(f"{name}\t{desc}")
    return sorted(set(out))


def _pypi() -> list:
    out = set()
    for dist in importlib.metadata.distributions():
        name, summary = dist.metadata.get("Name"), dist.metadata.get("Summary")
        if name and summary and summary.strip() not in ("", "UNKNOWN"):
            out.add(f"{name}\t{summary.strip()}")
    return sorted(out)


def _stdlib() -> tuple:
    """(functions 'qualname\\tfirst docstring paragraph', code snippets of 4-14 lines)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    fns, snippets = [], []
    for path in sorted(root.glob("*.py")) + sorted(root.glob("*/*.py")):
        if any(p in path.parts for p in ("test", "tests", "idle_test", "site-packages")):
            continue
        try:
            src = path.read_text(encoding="utf-8")
            tree = ast.parse(src)
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        mod = path.relative_to(root).with_suffix("").as_posix().replace("/", ".")
        lines = src.splitlines()
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
                doc = ast.get_docstring(node)
                if doc and 40 <= len(doc.split("\n\n")[0]) <= 400:
                    fns.append(f"{mod}.{node.name}\t{doc.split(chr(10) + chr(10))[0].strip()}")
                n = node.end_lineno - node.lineno + 1
                if isinstance(node, ast.FunctionDef) and 4 <= n <= 14:
                    snippets.append(textwrap.dedent("\n".join(lines[node.lineno - 1:node.end_lineno])))
    return sorted(set(fns)), sorted(set(snippets))


_POOLS = None


def pools() -> dict:
    global _POOLS
    if _POOLS is None:
        fns, snippets = _stdlib()
        _POOLS = dict(science=SCIENCE, history=HISTORY, tech=TECH, everyday=EVERYDAY, code=CODE_TASKS,
                      text=TEXTS, debian=_debian(), pypi=_pypi(), stdlib_fn=fns, stdlib_code=snippets)
    return _POOLS


def make_prompts(split: str, n: int, seed: int) -> list:
    """``n`` prompts of the ``split`` family ("train" or "heldout"), deterministic for ``seed``."""
    if split not in ("train", "heldout"):
        raise ValueError(f"split={split!r}: expected 'train' or 'heldout'")
    templates = TRAIN_TEMPLATES if split == "train" else HELDOUT_TEMPLATES
    pool = {k: _split(v, split) for k, v in pools().items()}
    rng = random.Random(f"{seed}-{split}")
    names = sorted(templates)
    out, seen = [], set()
    while len(out) < n:
        name = rng.choice(names)
        sources, fmt = templates[name]
        src = rng.choice(sources)
        item = rng.choice(pool[src])
        f = dict(x=item, s=rng.choice(STYLES), t=item, lang=rng.choice(LANGS), task=item.rstrip(".") + ".",
                 code=item, name=item.split("\t")[0], doc=item.split("\t")[-1])
        text = fmt.format(**f)
        if text in seen:
            if len(seen) > 50 * n:
                raise RuntimeError("prompt space exhausted")
            continue
        seen.add(text)
        out.append(dict(kind="raw" if name.startswith("raw_") else "chat", text=text, template=name))
    return out


if __name__ == "__main__":
    import sys
    split = sys.argv[1] if len(sys.argv) > 1 else "train"
    ps = make_prompts(split, int(sys.argv[2]) if len(sys.argv) > 2 else 20, 0)
    print({k: len(v) for k, v in pools().items()})
    for p in ps:
        print(p["template"], "|", p["text"][:150].replace("\n", "\\n"))
