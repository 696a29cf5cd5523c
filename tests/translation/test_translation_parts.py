"""The data folder checks, the model's architecture, the presets and the summary table."""

import json
import warnings

import pytest

from lets_hf.methods import method_label
from translation.data import CorpusError, read_split, read_splits
from translation.model import ArchitectureSizes, build_model
from translation.run_translation import parse_arguments
from translation.summarize import main as summarize
from translation.vocabulary import build_joined_vocabulary, build_tokenizer


def write_corpus(folder, files):
    for name, lines in files.items():
        (folder / name).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return str(folder)


def test_read_split_keeps_the_first_pairs(tmp_path):
    data = write_corpus(tmp_path, {"train.de": ["a b", "c", "d"], "train.en": ["x", "y z", "w"]})
    split = read_split(data, "train", "de", "en", max_samples=2)
    assert (split.name, split.source, split.target, len(split)) == ("train", ["a b", "c"], ["x", "y z"], 2)


@pytest.mark.parametrize(
    "files, message",
    [
        ({"train.de": ["a"]}, r"missing file .*train\.en"),
        ({"train.de": ["a", "b"], "train.en": ["x"]}, r"train\.de has 2 lines but .*train\.en has 1"),
        ({"train.de": [], "train.en": ["x"]}, r"empty file .*train\.de"),
    ],
)
def test_bad_corpus_is_named(tmp_path, files, message):
    data = write_corpus(tmp_path, files)
    with pytest.raises(CorpusError, match=message):
        read_split(data, "train", "de", "en")


def test_read_splits_checks_the_folder_and_skips_unused(tmp_path):
    with pytest.raises(CorpusError, match="does not exist"):
        read_splits(str(tmp_path / "nowhere"), ["train"], "de", "en", [None])
    data = write_corpus(tmp_path, {"test.de": ["a"], "test.en": ["x"]})
    train, test = read_splits(data, [None, "test"], "de", "en", [None, None])
    assert train is None and test.target == ["x"]


def test_model_is_transformer_iwslt_de_en():
    tokenizer = build_tokenizer(build_joined_vocabulary(["b a@@ c", "c b"], ["a@@ c c"]))
    model = build_model(tokenizer, ArchitectureSizes())
    config = model.config
    assert (
        config.d_model,
        config.encoder_layers,
        config.decoder_layers,
        config.encoder_ffn_dim,
        config.decoder_ffn_dim,
        config.encoder_attention_heads,
        config.decoder_attention_heads,
    ) == (512, 6, 6, 1024, 1024, 4, 4)
    assert (config.activation_function, config.dropout, config.scale_embedding) == ("relu", 0.3, True)
    assert config.decoder_start_token_id == tokenizer.eos_token_id == 2 and config.pad_token_id == 1
    shared = model.get_input_embeddings().weight
    assert model.lm_head.weight is shared and model.model.decoder.embed_tokens.weight is shared
    # per encoder layer 4(512^2+512) + 2*1024 + (512*1024+1024) + (1024*512+512) = 2,102,784; per decoder
    # layer 3,154,432; 6 of each = 31,543,296, plus the shared 7 x 512 embedding.
    assert model.num_parameters(only_trainable=True) == 31_543_296 + 7 * 512
    # fairseq's initialisation: embeddings N(0, 512^-0.5) with a zero padding row, Xavier linears.
    assert shared[1].abs().sum().item() == 0.0
    assert model.model.encoder.layers[0].fc1.weight.std().item() == pytest.approx((2 / 1536) ** 0.5, rel=0.03)
    assert model.model.encoder.layers[0].self_attn.q_proj.weight.std().item() == pytest.approx(1 / 32, rel=0.03)
    assert model.generation_config.num_beams == 5 and model.generation_config.max_length == 200


def test_presets_are_the_papers_and_flags_override_them(tmp_path):
    common = ["--data_dir", str(tmp_path), "--output_dir", str(tmp_path), "--do_train"]
    _, data_args, args = parse_arguments(common + ["--optim", "lets_asam"])
    assert (
        args.learning_rate,
        args.lr_scheduler_type.value,
        args.warmup_steps,
        args.adam_beta1,
        args.adam_beta2,
        args.weight_decay,
        args.label_smoothing_factor,
        args.max_grad_norm,
        args.num_train_epochs,
    ) == (5e-4, "inverse_sqrt", 4000, 0.9, 0.98, 1e-4, 0.1, 0.0, 50)
    assert (args.optim, args.lets_preset, args.asam_xi, args.generation_num_beams) == (
        "lets_asam",
        "paper_iwslt",
        0.01,
        5,
    )
    radius = args.build_radius(total_steps=1000)  # the paper's rule at rho_lr 1e-5, decayed to 0.1x at the last update
    assert (radius.lr, radius.lr_decay, radius.hvp.name, radius.objective.name) == (
        1e-5,
        0.1 ** (1 / 999),
        "diag",
        "gap2",
    )
    assert (data_args.source_lang, data_args.target_lang, data_args.train_split, data_args.test_split) == (
        "de",
        "en",
        "train",
        "test",
    )
    _, _, args = parse_arguments(
        common + ["--optim", "lets_sam", "--learning_rate", "1e-3", "--rho_lr", "0.05", "--rho_lr_decay", "1"]
    )  # flags override the preset's values one by one
    assert (args.learning_rate, args.lr_scheduler_type.value) == (1e-3, "inverse_sqrt")
    assert (args.build_radius(total_steps=1001).lr, args.build_radius(total_steps=1001).lr_decay) == (0.05, 1.0)
    _, _, args = parse_arguments(common + ["--optim", "lets_sam", "--lets_preset", "paper"])  # the paper's rule alone
    assert (args.build_radius(total_steps=1001).lr, args.build_radius(total_steps=1001).lr_decay) == (1e-4, 1.0)


@pytest.mark.parametrize(
    "optim, name",
    [("adamw_torch", "ERM"), ("sam", "SAM"), ("lets_sam", "LETS-SAM"), ("asam", "ASAM"), ("lets_asam", "LETS-ASAM")],
)
def test_method_names_are_table8s(optim, name):
    assert method_label(optim) == name


def test_summary_is_mean_and_sample_std_over_seeds(tmp_path, capsys):
    signature = "nrefs:1|case:mixed|eff:no|tok:none|smooth:exp|version:2.6.0"
    for seed, (method, bleu, rho) in enumerate([("LETS-SAM", 30.0, 0.1), ("LETS-SAM", 32.0, 0.2), ("ERM", 29.5, None)]):
        run = tmp_path / f"run{seed}"
        run.mkdir()
        (run / "results.json").write_text(
            json.dumps(
                {
                    "method": method,
                    "seed": seed,
                    "bleu": {"score": bleu, "signature": signature},
                    "rho_final": rho,
                    "data": {"label": "valid->test (not the paper's training data)"},
                }
            )
        )
    table = summarize([str(tmp_path), "--output", str(tmp_path / "table.md")])
    rows = table.splitlines()
    assert rows[2] == "| valid->test (not the paper's training data) | ERM | 2 | 29.50 | - | 34.60 |"
    assert (
        rows[3] == "| valid->test (not the paper's training data) | LETS-SAM | 0, 1 | 31.00 ± 1.41 | "
        "0.15 ± 0.07071 | 34.85 |"
    )
    assert (tmp_path / "table.md").read_text().startswith(rows[0])


def test_a_sample_of_hypotheses_says_how_many_are_empty():
    from translation.report import sample_of_hypotheses

    text = sample_of_hypotheses(["", "a b", ""], ["x", "y", "z"], shown=2)
    assert text.splitlines() == [
        "2 of 3 hypotheses are empty (the model ends each sentence at once: train longer); the first 2 beside their "
        "references:",
        "  hypothesis: ''",
        "  reference:  'x'",
        "  hypothesis: 'a b'",
        "  reference:  'y'",
    ]
    assert sample_of_hypotheses(["a"], ["b"]).startswith("0 of 1 hypotheses are empty; the first 1 beside")
    assert sample_of_hypotheses(["x" * 200], ["y"]).splitlines()[1] == f"  hypothesis: '{'x' * 87}...'"


@pytest.mark.parametrize("optim, preset", [("adamw_torch", "auto"), ("sam", "auto"), ("lets_sam", "paper_iwslt")])
def test_the_learned_radius_preset_is_a_default_of_lets_runs_only(tmp_path, optim, preset):
    """So that an ERM or SAM run is not warned of a LETS option it ignores, which it never set."""
    common = ["--data_dir", str(tmp_path), "--output_dir", str(tmp_path), "--do_train"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, _, args = parse_arguments([*common, "--optim", optim])
    assert args.lets_preset == preset
