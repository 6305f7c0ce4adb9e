"""Writes questions.jsonl and corpus.jsonl of the conversation set from the conversations below.

Run from the repository root: python evals/datasets/conversations/build.py
Each conversation is 2-3 turns; a turn is (question, answers or list items, gold doc_id, evidence);
`None` answers = the documents cannot answer it (the right reply is to abstain). A list turn gives
`items`: every required item, aliases separated by "|".
"""

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def T(question, answers=None, doc=None, evidence=None, items=None):
    return {"question": question, "answers": answers, "doc": doc, "evidence": evidence, "items": items}


S = "seed"
CONVERSATIONS = [
    # --- the seed article (corpus/) ----------------------------------------------------------
    [T("How many foreign-invested biotech companies completed the change of business scope in Pudong, and on what date?",
       doc=S, items=["six|6", "Nov 14|November 14"], evidence="the first batch of six foreign-invested biotechnology companies"),
     T("Which of them are named?", doc=S, items=["Merck Testing", "Frontera Therapeutics"],
       evidence="including Merck Testing and Frontera Therapeutics"),
     T("Where is the first one headquartered?", ["Germany"], S, "Germany-headquartered Merck Testing")],
    [T("Which company does Chen Li work for?", ["Neukio Biotherapeutics"], S, "Chen Li, executive assistant"),
     T("What products is it dedicated to developing?", ["next-generation immune cell products", "immune cell products"], S,
       "dedicated to developing next-generation immune cell products"),
     T("How many employees does it have?")],
    [T("Which authorities jointly issued the notice in September?", doc=S,
       items=["Ministry of Commerce", "National Health Commission", "National Medical Products Administration"],
       evidence="The move aligned with a notice jointly issued in September"),
     T("In how many cities does it permit foreign-invested companies to take part?", ["eight", "8"], S, "in eight cities"),
     T("Which of those cities or provinces are named?", doc=S, items=["Beijing", "Shanghai", "Hainan"],
       evidence="including Beijing, Shanghai and Hainan province")],
    [T("How many CAR-T products have been approved for the market in Pudong?", ["three", "3"], S,
       "three CAR-T products approved"),
     T("What are their names?")],
    [T("Who is the Party secretary of Shanghai?", ["Chen Jining"], S, "Chen Jining, Party secretary of Shanghai"),
     T("At which event did he speak about open, international cooperation?",
       ["International Biopharma Industry Week Shanghai", "International Biopharma Industry Week"], S,
       "International Biopharma Industry Week Shanghai"),
     T("And on which day did it begin?", ["Saturday"], S, "that began on Saturday")],
    [T("Which industry park in Shanghai aims to become a hub for gene therapy innovation?",
       ["Zhangjiang Cell and Gene Industry Park"], S, "Zhangjiang Cell and Gene Industry Park"),
     T("And which area in Minhang district does the city leverage for gene therapy?", ["Pujiang Gene Future Valley"], S,
       "Pujiang Gene Future Valley in Minhang district"),
     T("Which stages of the industrial chain do those demonstration zones involve?", doc=S,
       items=["research and development", "testing", "manufacturing"], evidence="involving research and development")],
    [T("What does CGT stand for?", ["cell and gene therapy"], S, "cell and gene therapy (CGT)"),
     T("Which conditions does it offer innovative approaches to treating?", doc=S,
       items=["tumors", "rare diseases", "chronic illnesses"], evidence="offering innovative approaches to treating")],
    [T("Where is Merck Testing headquartered?", ["Germany"], S, "Germany-headquartered Merck Testing"),
     T("What does it plan to introduce from its parent company overseas?",
       ["stem cell and gene therapy-related testing technologies", "testing technologies"], S,
       "The company plans to introduce"),
     T("And when?", ["within the next six months", "six months", "next six months"], S, "within the next six months")],
    [T("Which commission was among the departments that issued Shanghai's gene therapy action plan?",
       ["Shanghai Science and Technology Commission"], S, "including the Shanghai Science and Technology Commission"),
     T("By what year does the plan aim to enhance the city's innovation capacity in gene therapy?", ["2025"], S, "by 2025"),
     T("What is the plan's total budget?")],
    [T("Which illnesses are the therapies explored in Pudong particularly targeting?", doc=S,
       items=["solid tumors", "metabolic diseases"], evidence="particularly targeting solid tumors"),
     T("How many CAR-T products has the district seen approved?", ["three", "3"], S, "three CAR-T products approved")],
    [T("Which two kinds of targeted therapies did cell and gene therapy follow?", doc=S,
       items=["small molecule", "large molecule"], evidence="following small molecule and large molecule targeted therapies"),
     T("In the cell and gene therapy sector, which country is described as one of the leading countries in the world?",
       ["China"], S, "in which China is one of the leading countries")],
    [T("What does the current negative list restrict foreign investment in?", doc=S,
       items=["human stem cells", "gene diagnostics"], evidence="The current negative list restricts"),
     T("Where can the approved products be used?", ["nationwide"], S, "Approved products can be used nationwide"),
     T("Which province is named for product registration and production?", ["Hainan", "Hainan province"], S,
       "Hainan province for product registration")],
    [T("What will Shanghai focus on, according to Chen Jining?", doc=S,
       items=["frontier of life sciences", "innovation-driven projects"], evidence="Shanghai will focus on the frontier"),
     T("What kind of industry cluster does he want to build?",
       ["world-class biomedical industry cluster", "biomedical industry cluster"], S, "world-class biomedical industry cluster")],
    [T("What is the financial center in Shanghai shown in the photo?", ["Lujiazui"], S, "Lujiazui, the financial center"),
     T("Who took the photo?", ["Wang Gang"], S, "Photo/Wang Gang"),
     T("For which newspaper?", ["China Daily"], S, "Wang Gang for China Daily")],
    # --- squad-dev-mini paragraphs -----------------------------------------------------------
    [T("Which team won Super Bowl 50?", ["Denver Broncos", "Broncos"], "a000_p000", "champion Denver Broncos defeated"),
     T("Who did they defeat?", ["Carolina Panthers", "Panthers"], "a000_p000", "champion Carolina Panthers 24–10"),
     T("And what was the score?", ["24–10"], "a000_p000", "Carolina Panthers 24–10")],
    [T("Where was Super Bowl 50 played?", ["Levi's Stadium"], "a000_p000", "at Levi's Stadium"),
     T("And when?", ["February 7, 2016"], "a000_p000", "February 7, 2016")],
    [T("Which Carolina Panthers quarterback was named the NFL Most Valuable Player?", ["Cam Newton", "Newton"], "a000_p001",
       "quarterback Cam Newton was named"),
     T("How many times did Denver's defense sack him in Super Bowl 50?", ["seven", "7"], "a000_p002", "sacked him seven times"),
     T("Who was named Super Bowl MVP?", ["Von Miller"], "a000_p002", "Von Miller was named Super Bowl MVP")],
    [T("Which teams have made eight appearances in the Super Bowl?", doc="a000_p001",
       items=["Broncos", "Patriots", "Cowboys", "Steelers"], evidence="They joined the Patriots"),
     T("Which of them did the Broncos defeat in the AFC Championship Game?", ["New England Patriots", "Patriots"], "a000_p001",
       "denied the New England Patriots"),
     T("By what score?", ["20–18"], "a000_p001", "defeating them 20–18")],
    [T("What was the Panthers' regular season record before Super Bowl 50?", ["15–1"], "a000_p001", "with a 15–1 record"),
     T("And the Broncos' record?", ["12–4"], "a000_p001", "with a 12–4 record"),
     T("In what year was the Panthers franchise founded?", ["1995"], "a000_p001", "founded in 1995")],
    [T("Who was the first female recipient of the Nobel Prize born in Warsaw?", ["Maria Skłodowska-Curie", "Skłodowska-Curie"],
       "a001_p000", "Maria Skłodowska-Curie"),
     T("What was her research on?", ["radioactivity"], "a001_p000", "her research on radioactivity"),
     T("How many children did she have?")],
    [T("Which famous musicians from Warsaw are named?", doc="a001_p000", items=["Władysław Szpilman", "Frédéric Chopin|Chopin"],
       evidence="Famous musicians include"),
     T("In which village was Chopin born?", ["Żelazowa Wola"], "a001_p000", "village of Żelazowa Wola"),
     T("How old was he when he moved to Warsaw?", ["seven months old", "seven months"], "a001_p000", "seven months old")],
    [T("Which Polish general born in Warsaw was a hero of the American Revolutionary War?", ["Casimir Pulaski", "Pulaski"],
       "a001_p000", "Casimir Pulaski"),
     T("In what year was he born?", ["1745"], "a001_p000", "born here in 1745"),
     T("In what year did he die?")],
    [T("How large is the Saxon Garden in Warsaw?", ["15.5 ha"], "a001_p001", "covering the area of 15.5 ha"),
     T("What is situated at its east end?", ["Tomb of the Unknown Soldier"], "a001_p001", "the Tomb of the Unknown Soldier"),
     T("And how large is the Łazienki Park?", ["76 ha"], "a001_p001", "covers the area of 76 ha")],
    [T("How many natural reserves are there in Warsaw?", ["13"], "a001_p002", "There are 13 natural reserves"),
     T("Which of them are named?", doc="a001_p002", items=["Bielany Forest", "Kabaty Woods", "Czerniaków Lake"],
       evidence="among others, Bielany Forest"),
     T("Which of them is the largest?")],
    [T("Who was the leader of the Norse raiders who gave their name to Normandy?", ["Rollo"], "a002_p000", "under their leader Rollo"),
     T("To which king did they agree to swear fealty?", ["Charles III", "King Charles III of West Francia"], "a002_p000",
       "King Charles III of West Francia"),
     T("From which countries did the raiders come?", doc="a002_p000", items=["Denmark", "Iceland", "Norway"],
       evidence="from Denmark, Iceland and Norway")],
    [T("What were the Normans famed for?", doc="a002_p001", items=["martial spirit", "Christian piety"],
       evidence="famed for their martial spirit"),
     T("What was their dialect known as?", doc="a002_p001", items=["Norman", "Normaund", "Norman French"],
       evidence="their dialect becoming known as")],
    [T("When was Nikola Tesla born?", ["10 July 1856"], "a003_p000", "10 July 1856"),
     T("And when did he die?", ["7 January 1943"], "a003_p000", "7 January 1943"),
     T("In which year did he emigrate to the United States?", ["1884"], "a003_p001", "United States in 1884")],
    [T("For whom did Tesla go to work in New York City?", ["Thomas Edison", "Edison"], "a003_p001", "to work for Thomas Edison"),
     T("Who licensed his AC induction motor and transformer?", ["George Westinghouse", "Westinghouse"], "a003_p001",
       "licensed by George Westinghouse")],
    [T("What is the science of teaching called?", ["pedagogy"], "a005_p000", "the study of pedagogy"),
     T("What is it called when teachers continue their education after they qualify?", ["continuing professional development"],
       "a005_p000", "continuing professional development")],
    [T("When was Martin Luther born?", ["10 November 1483"], "a006_p000", "10 November 1483"),
     T("In which year did he propose the Ninety-Five Theses?", ["1517"], "a006_p000", "Ninety-Five Theses of 1517"),
     T("Who excommunicated him?", ["Pope", "Pope Leo X"], "a006_p000", "his excommunication by the Pope")],
    [T("At whose demand did Luther refuse to retract all of his writings?", doc="a006_p000",
       items=["Pope Leo X|Leo X", "Charles V"], evidence="at the demand of Pope Leo X"),
     T("Where did the emperor make that demand?", ["Diet of Worms"], "a006_p000", "at the Diet of Worms"),
     T("In what year?", ["1521"], "a006_p000", "Diet of Worms in 1521")],
    [T("According to Luther, how is salvation received?", ["free gift of God's grace", "God's grace", "through faith"],
       "a006_p001", "received only as a free gift"),
     T("Which names did he insist on for those who professed Christ?", doc="a006_p001", items=["Christian", "Evangelical"],
       evidence="Luther insisted on Christian or Evangelical")],
    [T("Which are the eight counties of Southern California?", doc="a007_p000",
       items=["Imperial", "Los Angeles", "Orange", "Riverside", "San Bernardino", "San Diego", "Santa Barbara", "Ventura"],
       evidence="Imperial, Los Angeles, Orange"),
     T("Which two counties does the 10-county definition add?", doc="a007_p000", items=["Kern", "San Luis Obispo"],
       evidence="including Kern and San Luis Obispo counties")],
    [T("How many megaregions does the United States have?", ["11"], "a007_p001", "one of the 11 megaregions"),
     T("Into which cities does the Southern California Megaregion extend?", doc="a007_p001", items=["Las Vegas", "Tijuana"],
       evidence="extending east into Las Vegas")],
    [T("When was BSkyB formed?", ["November 1990"], "a008_p000", "Formed in November 1990"),
     T("By the merger of which companies?", doc="a008_p000", items=["Sky Television", "British Satellite Broadcasting"],
       evidence="equal merger of Sky Television"),
     T("What did its holding company change its name to?", ["Sky plc"], "a008_p000", "changed its name to Sky plc")],
    [T("What share of Sky Deutschland did BSkyB acquire in November 2014?", ["90.04%"], "a008_p000", "90.04% interest"),
     T("And which other company did it acquire in 2014?", ["Sky Italia"], "a008_p000", "acquisition of Sky Italia")],
    [T("What is the largest stadium in Australia?", ["Melbourne Cricket Ground"], "a009_p000", "The Melbourne Cricket Ground is the largest"),
     T("Which Olympic Games did it host?", ["1956 Summer Olympics"], "a009_p000", "1956 Summer Olympics"),
     T("How many people does the AFL grand final there usually draw?", ["over 95,000", "95,000"], "a009_p000", "over 95,000 people")],
    [T("Where is Victoria's total gross state product ranked in Australia?", ["second"], "a009_p000", "ranked second in Australia"),
     T("And its gross state product per capita?", ["fourth"], "a009_p000", "ranked fourth in terms of GSP per capita")],
    [T("From which countries did immigrants especially come to search for gold in Victoria?", doc="a009_p001",
       items=["Ireland", "China"], evidence="especially from Ireland and China"),
     T("Where was there a riot in 1857?", ["Buckland Valley"], "a009_p001", "riot at Buckland Valley"),
     T("How many miners did typhoid kill there in 1854?", ["over 1,000", "1,000"], "a009_p001", "killed over 1,000 miners")],
    [T("How many Huguenots were there by 1562?", ["two million", "an estimated two million"], "a010_p000", "two million by 1562"),
     T("Between which years were the Wars of Religion fought?", ["1562 to 1598", "from 1562 to 1598"], "a010_p000",
       "from 1562 to 1598"),
     T("What ended them?", ["Edict of Nantes", "the granting of the Edict of Nantes"], "a010_p000", "granting of the Edict of Nantes")],
    [T("What kind of engines are steam engines?", ["external combustion engines", "external combustion"], "a011_p000",
       "external combustion engines"),
     T("Which non-combustion heat sources may they use?", doc="a011_p000", items=["solar power", "nuclear power", "geothermal energy"],
       evidence="Non-combustion heat sources such as"),
     T("What is the ideal thermodynamic cycle used to analyze this process called?", ["Rankine cycle"], "a011_p000", "Rankine cycle")],
    [T("When did Nikola Tesla die?", ["7 January 1943"], "a003_p000", "7 January 1943"),
     T("And Martin Luther?", ["18 February 1546"], "a006_p000", "18 February 1546")],
    [T("Which team did the Panthers defeat in the NFC Championship Game?", ["Arizona Cardinals", "Cardinals"], "a000_p001",
       "defeated the Arizona Cardinals 49–15"),
     T("And which team did the Broncos defeat in the AFC Championship Game?", ["New England Patriots", "Patriots"], "a000_p001",
       "denied the New England Patriots"),
     T("Which of the two games was won by the larger margin?", ["NFC Championship Game", "NFC"], "a000_p001",
       "49–15 in the NFC Championship Game")],
]


def main() -> None:
    seed = [json.loads(line) for line in (ROOT / "seed" / "corpus.jsonl").read_text(encoding="utf-8").splitlines() if line]
    squad = [json.loads(line) for line in (ROOT / "squad-dev-mini" / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
             if line]
    texts = {d["doc_id"]: d["text"] for d in seed + squad}
    rows = []
    for i, conversation in enumerate(CONVERSATIONS, start=1):
        history = []
        for j, turn in enumerate(conversation, start=1):
            row = {"qid": f"c{i:02d}t{j}", "question": turn["question"], "history": list(history)}
            if turn["answers"] is None and turn["items"] is None:
                row |= {"answers": [], "gold_doc_ids": [], "answerable": False}
            else:
                text = texts[turn["doc"]].replace("\xa0", " ")
                items = turn["items"] or []
                answers = turn["answers"] or [" and ".join(i.split("|")[0] for i in items)]
                for item in items:  # every list item, and some gold answer, is written in the gold document
                    assert any(a.lower() in text.lower() for a in item.split("|")), (row["qid"], item)
                assert items or any(a.lower() in text.lower() for a in turn["answers"]), (row["qid"], turn["answers"])
                assert turn["evidence"].lower() in text.lower(), (row["qid"], turn["evidence"])
                row |= {"answers": answers, "gold_doc_ids": [turn["doc"]], "answerable": True,
                        "evidence": [texts[turn["doc"]][text.lower().index(turn["evidence"].lower()):][:len(turn["evidence"])]]}
                if items:
                    row["list_items"] = items
            rows.append(row)
            history.append(turn["question"])
    (HERE / "questions.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    corpus = seed + squad
    (HERE / "corpus.jsonl").write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in corpus), encoding="utf-8")
    turns = len(rows)
    print(f"{len(CONVERSATIONS)} conversations, {turns} turns, {sum(not r['answerable'] for r in rows)} must abstain, "
          f"{sum('list_items' in r for r in rows)} list answers")


if __name__ == "__main__":
    main()
