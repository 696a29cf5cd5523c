"""Reading GLUE: the real local files give the documented row counts; bad files give clear errors."""

import pytest

from glue.data import hold_out, load_files, load_glue, load_tsv, read_tsv_split
from glue.errors import GlueInputError
from glue.tasks import TASKS, get_task

# ../shared/data/README.md: train / dev rows per task
ROW_COUNTS = {"cola": (8551, 1043), "sst2": (67349, 872), "mrpc": (3668, 408), "stsb": (5749, 1500), "rte": (2490, 277)}


@pytest.mark.parametrize("name", sorted(ROW_COUNTS))
def test_local_tasks_have_documented_row_counts(glue_data, name):
    task = get_task(name)
    data = load_tsv(task, str(glue_data))
    assert (len(data["train"]), len(data["validation"])) == ROW_COUNTS[name]
    assert data["train"].column_names == list(task.columns)


def test_first_rows_are_read_verbatim(glue_data):
    cola = load_tsv(get_task("cola"), str(glue_data))["train"][0]  # no header: the first line is data
    assert cola == {"sentence": "Our friends won't buy this analysis, let alone the next one we propose.", "label": 1}
    mrpc = load_tsv(get_task("mrpc"), str(glue_data))["train"][0]  # BOM before "Quality"; quotes kept
    assert mrpc["label"] == 1 and mrpc["sentence1"].startswith('Amrozi accused his brother, whom he called "the')
    stsb = load_tsv(get_task("stsb"), str(glue_data))["validation"]
    assert stsb[1]["label"] == pytest.approx(4.75) and stsb.features["label"].dtype == "float32"
    rte = load_tsv(get_task("rte"), str(glue_data))["train"]
    assert rte[0]["label"] == 1 and rte.features["label"].names == ["entailment", "not_entailment"]


def test_task_folder_may_be_given_directly(glue_data):
    assert len(load_glue(get_task("rte"), data_dir=str(glue_data / "RTE"))["validation"]) == 277


def test_every_task_is_defined_with_hub_names():
    assert set(TASKS) == {"cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte"}
    assert get_task("MNLI").eval_splits == ("validation_matched", "validation_mismatched")
    assert get_task("STS-B").is_regression and get_task("STS-B").num_labels == 1
    assert get_task("mnli").num_labels == 3


def test_unknown_task():
    with pytest.raises(GlueInputError, match="unknown task 'wnli2'.*cola, sst2, mrpc"):
        get_task("wnli2")


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_missing_split_and_column(tmp_path):
    folder = tmp_path / "RTE"
    folder.mkdir()
    write(folder / "train.tsv", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n")
    with pytest.raises(GlueInputError, match=r"RTE/dev\.tsv not found: the validation split of RTE"):
        load_tsv(get_task("rte"), str(tmp_path))
    write(folder / "dev.tsv", "index\tsentence1\tlabel\n0\ta\tentailment\n")
    with pytest.raises(GlueInputError, match="dev.tsv has no column 'sentence2'"):
        load_tsv(get_task("rte"), str(tmp_path))


def test_labels_outside_the_label_set(tmp_path):
    path = write(tmp_path / "train.tsv", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\tc\td\tmaybe\n")
    with pytest.raises(GlueInputError, match=r"row 2: label 'maybe' is not one of rte's labels"):
        read_tsv_split(get_task("rte"), str(path))
    scores = write(tmp_path / "s.tsv", "sentence1\tsentence2\tscore\na\tb\t4.5\nc\td\t7\n")
    with pytest.raises(GlueInputError, match=r"row 2: score '7' is not a number in \[0, 5\]"):
        read_tsv_split(get_task("stsb"), str(scores))


def test_short_row_is_an_error_except_for_qqp(tmp_path):
    text = "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n1\t2\t3\tq a\tq b\t1\n2\t4\t5\tbroken\n"
    with pytest.raises(GlueInputError, match="row 2: expected at least 4"):
        read_tsv_split(
            get_task("rte"),
            str(write(tmp_path / "r.tsv", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\ta\n")),
        )
    assert len(read_tsv_split(get_task("qqp"), str(write(tmp_path / "q.tsv", text)))) == 1


def test_csv_and_json_files(tmp_path):
    train = write(tmp_path / "train.csv", "sentence1,sentence2,label\nx y,y x,equivalent\na b,c d,0\n")
    dev = write(tmp_path / "dev.jsonl", '{"sentence1": "p", "sentence2": "q", "label": 1}\n')
    data = load_files(get_task("mrpc"), str(train), str(dev))
    assert data["train"]["label"] == [1, 0] and data["validation"]["label"] == [1]
    bad = write(tmp_path / "bad.csv", "sentence,label\nx,1\n")
    with pytest.raises(GlueInputError, match=r"lacks column\(s\) \['sentence1', 'sentence2'\]"):
        load_files(get_task("mrpc"), str(bad), str(dev))


def test_hold_out_is_stratified_and_disjoint(glue_data):
    train = load_tsv(get_task("mrpc"), str(glue_data))["train"]
    rest, held = hold_out(train, 0.1, seed=0)
    assert (len(rest), len(held)) == (3301, 367)
    assert sum(held["label"]) / len(held) == pytest.approx(sum(train["label"]) / len(train), abs=0.01)
    pairs = lambda data: list(zip(data["sentence1"], data["sentence2"]))  # noqa: E731
    assert sorted(pairs(rest) + pairs(held)) == sorted(pairs(train))  # a partition of the training rows
    with pytest.raises(GlueInputError, match=r"must lie in \(0, 1\)"):
        hold_out(train, 1.5, seed=0)


def test_hub_without_network_or_cache_says_how_to_run_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # conftest sets it before datasets is imported
    with pytest.raises(GlueInputError, match=r"could not load the GLUE RTE dataset \(nyu-mll/glue\).*--data_dir"):
        load_glue(get_task("rte"), cache_dir=str(tmp_path))


MNLI_TRAIN = (
    "index",
    "promptID",
    "pairID",
    "genre",
    "sentence1_binary_parse",
    "sentence2_binary_parse",
    "sentence1_parse",
    "sentence2_parse",
    "sentence1",
    "sentence2",
    "label1",
    "gold_label",
)
MNLI_DEV = MNLI_TRAIN[:-1] + ("label2", "label3", "label4", "label5", "gold_label")


def tsv(header, rows):
    return "\n".join("\t".join(row) for row in [header, *rows]) + "\n"


def mnli_row(header, premise, hypothesis, label):
    values = dict.fromkeys(header, "x")
    values.update(sentence1=premise, sentence2=hypothesis, gold_label=label)
    return [values[column] for column in header]


def test_layouts_of_the_tasks_not_shipped_here(tmp_path):
    """QQP, MNLI and QNLI in their original glue_data/ headers (too large to ship; built here)."""
    files = {
        "QQP/train.tsv": tsv(
            ("id", "qid1", "qid2", "question1", "question2", "is_duplicate"),
            [("0", "1", "2", "How?", "Why?", "0"), ("1", "3", "4", "Who?", "Who is?", "1")],
        ),
        "QQP/dev.tsv": tsv(
            ("id", "qid1", "qid2", "question1", "question2", "is_duplicate"), [("5", "6", "7", "What?", "Which?", "1")]
        ),
        "QNLI/train.tsv": tsv(("index", "question", "sentence", "label"), [("0", "Q?", "S.", "not_entailment")]),
        "QNLI/dev.tsv": tsv(("index", "question", "sentence", "label"), [("0", "Q?", "S.", "entailment")]),
        "MNLI/train.tsv": tsv(MNLI_TRAIN, [mnli_row(MNLI_TRAIN, "P.", "H.", "neutral")]),
        "MNLI/dev_matched.tsv": tsv(MNLI_DEV, [mnli_row(MNLI_DEV, "P m.", "H m.", "contradiction")]),
        "MNLI/dev_mismatched.tsv": tsv(MNLI_DEV, [mnli_row(MNLI_DEV, "P mm.", "H mm.", "entailment")]),
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        write(tmp_path / name, text)
    qqp = load_tsv(get_task("qqp"), str(tmp_path))
    assert qqp["train"]["question2"] == ["Why?", "Who is?"] and qqp["train"]["label"] == [0, 1]
    assert load_tsv(get_task("qnli"), str(tmp_path))["train"][0] == {"question": "Q?", "sentence": "S.", "label": 1}
    mnli = load_tsv(get_task("mnli"), str(tmp_path))
    assert list(mnli) == ["train", "validation_matched", "validation_mismatched"]
    assert mnli["train"][0] == {"premise": "P.", "hypothesis": "H.", "label": 1}
    assert mnli["validation_matched"]["label"] == [2] and mnli["validation_mismatched"]["premise"] == ["P mm."]
