"""The chatbot (single-turn unless the model saw dialogues or history is asked for; multi-turn
prompts, reset, regenerate, truncation) and ``safe-rlhf-chat``."""

from __future__ import annotations

import io
import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from safe_rlhf_lightning.cli import chat as chat_cli
from safe_rlhf_lightning.data import PromptTemplate
from safe_rlhf_lightning.models import (
    SFT_DIALOGUE_TURNS,
    build_tiny_causal_lm,
    load_causal_lm,
    load_tokenizer,
)
from safe_rlhf_lightning.serve import Chatbot, ChatError, GenerationSettings, Turn
from safe_rlhf_lightning.serve import chat as chat_module

TINY = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64}
SETTINGS = GenerationSettings(max_new_tokens=6, seed=0)


@pytest.fixture
def tiny_model(small_tokenizer):
    return build_tiny_causal_lm(small_tokenizer, **TINY, max_position_embeddings=64)


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory, small_tokenizer) -> list[Path]:
    """Two different tiny policies saved like trained ones: ``<stage>/model``."""
    root = tmp_path_factory.mktemp("policies")
    folders = []
    for seed, stage in enumerate(("sft", "ppo")):
        folder = root / stage / "model"
        build_tiny_causal_lm(small_tokenizer, **TINY, seed=seed).save_pretrained(folder)
        small_tokenizer.save_pretrained(folder)
        folders.append(folder)
    return folders


@pytest.fixture
def canned(monkeypatch) -> list[str]:
    """Replace sampling with fixed answers ``a1, a2, ...``; returns the prompts it was given."""
    prompts: list[str] = []

    def fake_generate_texts(model, tokenizer, batch, **kwargs):
        prompts.extend(batch)
        return [f"a{len(prompts)}"]

    monkeypatch.setattr(chat_module, "generate_texts", fake_generate_texts)
    return prompts


def test_format_dialogue_matches_upstream_chatbot_layout() -> None:
    template = PromptTemplate()
    # Upstream: PROMPT_BEGIN + (PROMPT_USER + PROMPT_ASSISTANT + response + eos_token) per turn.
    assert (
        template.format_dialogue([("q1", "  a1"), ("q2", "a2")], "q3", end_of_response="</s>")
        == "BEGINNING OF CONVERSATION: USER: q1 ASSISTANT: a1</s>USER: q2 ASSISTANT: a2</s>"
        "USER: q3 ASSISTANT:"
    )
    # One turn is exactly the single-prompt (training) format.
    assert template.format_dialogue([], "q {x}") == template.format_prompt("q {x}")
    custom = PromptTemplate("<u>{prompt}</u>", response_prefix="")
    assert custom.format_dialogue([("a", "b")], "c", end_of_response="|") == "<u>a</u>b|<u>c</u>"


def test_prompt_after_two_turns_is_the_upstream_dialogue(tiny_model, small_tokenizer, canned):
    bot = Chatbot(tiny_model, small_tokenizer, settings=SETTINGS, history=True)
    assert bot.reply("How do I bake bread?") == "a1"
    assert bot.reply("And then?") == "a2"
    assert canned == [
        "BEGINNING OF CONVERSATION: USER: How do I bake bread? ASSISTANT:",
        "BEGINNING OF CONVERSATION: USER: How do I bake bread? ASSISTANT: a1</s>"
        "USER: And then? ASSISTANT:",
    ]
    assert bot.prompt_text("Thanks") == (
        "BEGINNING OF CONVERSATION: USER: How do I bake bread? ASSISTANT: a1</s>"
        "USER: And then? ASSISTANT: a2</s>USER: Thanks ASSISTANT:"
    )
    assert bot.history == (Turn("How do I bake bread?", "a1"), Turn("And then?", "a2"))


def test_by_default_a_model_answers_as_it_was_trained(tiny_model, small_tokenizer, canned):
    """Single-turn for a model whose SFT examples were single-turn, or that does not say;
    multi-turn for one whose SFT data held dialogues, or when asked."""
    single = PromptTemplate().format_prompt
    assert getattr(tiny_model.config, SFT_DIALOGUE_TURNS, None) is None  # built here: unknown
    for turns in (None, 1):
        setattr(tiny_model.config, SFT_DIALOGUE_TURNS, turns)
        bot = Chatbot(tiny_model, small_tokenizer, settings=SETTINGS)
        assert not bot.keeps_history
        bot.reply("How do I bake bread?")
        bot.reply("And then?")
        assert canned[-2:] == [single("How do I bake bread?"), single("And then?")]
        assert bot.history[0].prompt == "How do I bake bread?"  # kept for /regenerate
    setattr(tiny_model.config, SFT_DIALOGUE_TURNS, 3)
    assert Chatbot(tiny_model, small_tokenizer, settings=SETTINGS).keeps_history
    assert not Chatbot(tiny_model, small_tokenizer, settings=SETTINGS, history=False).keeps_history


def test_reset_clears_the_history(tiny_model, small_tokenizer, canned):
    bot = Chatbot(tiny_model, small_tokenizer, settings=SETTINGS, history=True)
    bot.reply("q1")
    bot.reply("q2")
    bot.reset()
    assert bot.history == ()
    assert bot.reply("q3") == "a3"
    assert canned[-1] == "BEGINNING OF CONVERSATION: USER: q3 ASSISTANT:"


def test_regenerate_replaces_only_the_last_answer(tiny_model, small_tokenizer, canned):
    bot = Chatbot(tiny_model, small_tokenizer, settings=SETTINGS, history=True)
    with pytest.raises(ChatError, match="nothing to regenerate"):
        bot.regenerate()
    bot.reply("q1")
    bot.reply("q2")
    assert bot.regenerate() == "a3"
    assert bot.history == (Turn("q1", "a1"), Turn("q2", "a3"))
    assert canned[2] == canned[1]  # the same prompt was answered again


def test_seeded_answers_repeat_across_bots_and_regenerate_samples_anew(tiny_model, small_tokenizer):
    first = Chatbot(tiny_model, small_tokenizer, settings=SETTINGS)
    second = Chatbot(tiny_model, small_tokenizer, settings=SETTINGS)
    answer = first.reply("How do I bake bread?")
    assert answer != ""
    assert second.reply("How do I bake bread?") == answer
    # The n-th generation uses seed + n: a regenerated answer is a new sample.
    assert first.regenerate() != answer
    assert first.history[0].prompt == "How do I bake bread?"


def test_history_is_cut_from_the_left_by_whole_turns(tiny_model, small_tokenizer, canned, caplog):
    default = Chatbot(tiny_model, small_tokenizer, settings=SETTINGS)
    assert default.context_length == 64  # from the model config
    settings = GenerationSettings(max_new_tokens=8)
    bot = Chatbot(tiny_model, small_tokenizer, settings=settings, context_length=48, history=True)
    assert bot.prompt_budget == 40
    questions = [f"bake bread number {i}" for i in range(6)]
    with caplog.at_level(logging.WARNING, logger="safe_rlhf_lightning.serve.chat"):
        for question in questions:
            bot.reply(question)
    kept = [turn.prompt for turn in bot.history]
    assert 1 < len(kept) < len(questions)
    assert kept == questions[-len(kept) :]  # the latest turns, in order
    assert all(len(small_tokenizer(prompt).input_ids) <= 40 for prompt in canned)
    # The turn before the oldest kept one would not have fitted.
    one_more = [(q, f"a{questions.index(q) + 1}") for q in questions[-len(kept) - 1 : -1]]
    fuller = PromptTemplate().format_dialogue(one_more, questions[-1], end_of_response="</s>")
    assert len(small_tokenizer(fuller).input_ids) > 40
    assert "dropped the oldest 1 turn(s)" in caplog.text


def test_a_message_longer_than_the_context_is_refused(tiny_model, small_tokenizer, canned):
    bot = Chatbot(tiny_model, small_tokenizer, settings=GenerationSettings(max_new_tokens=8))
    bot.reply("hi")
    with pytest.raises(ChatError, match="too long"):
        bot.reply("bread " * 100)
    assert bot.history == (Turn("hi", "a1"),)
    with pytest.raises(ValueError, match="leaves no room"):
        Chatbot(tiny_model, small_tokenizer, settings=GenerationSettings(max_new_tokens=64))


def _solo_answers(folder: Path, messages: list[str]) -> list[str]:
    """What one bot loaded from ``folder`` answers with SETTINGS, outside the CLI."""
    bot = Chatbot(load_causal_lm(str(folder)), load_tokenizer(str(folder)), settings=SETTINGS)
    return [bot.reply(message) for message in messages]


def _lines(text: str) -> list[str]:
    """Output lines split on newlines only: a random model's answers may hold other line
    breaks (a vertical tab, a form feed) that ``str.splitlines`` would split on."""
    return text.rstrip("\n").split("\n")


UNRECORDED = "its config.json does not record sft_dialogue_turns; --history to keep it"


def _run_cli(monkeypatch, stdin: str, *args: str) -> int:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    return chat_cli.main([*args, "--seed", "0", "--max-new-tokens", "6", "--device", "cpu"])


def test_cli_chats_with_piped_stdin_until_exit(model_dirs, monkeypatch, capsys):
    sft = model_dirs[0]
    stdin = "/regenerate\nhi\n\nhow?\n/exit\nnever answered\n"
    assert _run_cli(monkeypatch, stdin, str(sft)) == 0
    first, second = _solo_answers(sft, ["hi", "how?"])
    assert _lines(capsys.readouterr().out) == [
        f"[sft/model] single-turn: each message is answered on its own ({UNRECORDED})",
        "USER: /regenerate",
        "[sft/model] (nothing to regenerate: the dialogue is empty)",
        "USER: hi",
        f"[sft/model] {first}",
        "USER: how?",
        f"[sft/model] {second}",
        "USER: /exit",
    ]


def test_cli_arena_answers_with_both_models(model_dirs, monkeypatch, capsys):
    sft, ppo = model_dirs
    # No /exit: the end of stdin (Ctrl-D) ends the session too.
    stdin = "hi\n/reset\nhello\n/regenerate\n/nope\n"
    assert _run_cli(monkeypatch, stdin, str(sft), str(ppo)) == 0
    expected = {}
    for folder in model_dirs:
        bot = Chatbot(load_causal_lm(str(folder)), load_tokenizer(str(folder)), settings=SETTINGS)
        expected[folder] = [bot.reply("hi")]
        bot.reset()
        expected[folder] += [bot.reply("hello"), bot.regenerate()]
    assert expected[sft] != expected[ppo]  # different models, so the columns can be told apart
    assert _lines(capsys.readouterr().out) == [
        f"[sft/model] single-turn: each message is answered on its own ({UNRECORDED})",
        f"[ppo/model] single-turn: each message is answered on its own ({UNRECORDED})",
        "USER: hi",
        f"[sft/model] {expected[sft][0]}",
        f"[ppo/model] {expected[ppo][0]}",
        "USER: /reset",
        "(the dialogue history is cleared)",
        "USER: hello",
        f"[sft/model] {expected[sft][1]}",
        f"[ppo/model] {expected[ppo][1]}",
        "USER: /regenerate",
        f"[sft/model] {expected[sft][2]}",
        f"[ppo/model] {expected[ppo][2]}",
        "USER: /nope",
        "(unknown command /nope; /help lists the commands)",
    ]


@pytest.fixture
def sft_policy(model_dirs, tmp_path) -> Path:
    """A policy folder as the SFT stage writes it for single-turn demonstrations."""
    folder = tmp_path / "round1" / "sft" / "model"
    shutil.copytree(model_dirs[0], folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, SFT_DIALOGUE_TURNS: 1}))
    return folder


@pytest.mark.parametrize("history", [None, "--history"])
def test_cli_two_turns_single_turn_by_default_or_the_dialogue_on_request(
    sft_policy, history, monkeypatch, capsys, canned
):
    """The prompts the model is given in a two-turn exchange through the CLI: the second
    message alone, in the single-turn layout the model was trained on (default for it), or
    the whole dialogue (``--history``)."""
    options = [history] if history else []
    assert (
        _run_cli(monkeypatch, "How do I bake bread?\nAnd then?\n", str(sft_policy), *options) == 0
    )
    template = PromptTemplate()
    first = template.format_prompt("How do I bake bread?")
    if history:
        second = template.format_dialogue(
            [("How do I bake bread?", "a1")], "And then?", end_of_response="</s>"
        )
        mode = "multi-turn: earlier turns stay in the prompt (--history)"
    else:
        second = template.format_prompt("And then?")
        mode = (
            "single-turn: each message is answered on its own (it was trained on single-turn "
            "examples; --history to keep the dialogue)"
        )
    assert canned == [first, second]
    assert _lines(capsys.readouterr().out)[0] == f"[sft/model] {mode}"


def test_sft_data_turns_are_counted_in_the_dialogue_layout() -> None:
    template = PromptTemplate()
    assert template.dialogue_turns("How do I bake bread?", end_of_response="</s>") == 1
    # A prompt that holds two earlier turns, as format_dialogue lays them out.
    dialogue = "q1 ASSISTANT: a1</s>USER: q2 ASSISTANT: a2</s>USER: q3"
    assert template.format_prompt(dialogue) == template.format_dialogue(
        [("q1", "a1"), ("q2", "a2")], "q3", end_of_response="</s>"
    )
    assert template.dialogue_turns(dialogue, end_of_response="</s>") == 3
    # Another layout (HH-RLHF's) is one turn for this template; no EOS text: cannot tell.
    assert (
        template.dialogue_turns("\n\nHuman: a\n\nAssistant: b\n\nHuman: c", end_of_response="</s>")
        == 1
    )
    assert template.dialogue_turns(dialogue, end_of_response="") == 1


def test_cli_names_a_missing_or_non_model_folder_and_exits_2(
    model_dirs, tmp_path, monkeypatch, capsys
):
    missing = tmp_path / "nope"
    with pytest.raises(SystemExit) as exited:
        _run_cli(monkeypatch, "hi\n", str(model_dirs[0]), str(missing))
    assert exited.value.code == 2
    assert capsys.readouterr().err == f"safe-rlhf-chat: error: {missing}: no such folder\n"

    with pytest.raises(SystemExit) as exited:
        _run_cli(monkeypatch, "hi\n", str(tmp_path))
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        f"safe-rlhf-chat: error: {tmp_path}: not a model folder (no config.json)\n"
    )

    weightless = tmp_path / "weightless"
    weightless.mkdir()
    (weightless / "config.json").write_text((model_dirs[0] / "config.json").read_text())
    with pytest.raises(SystemExit) as exited:
        _run_cli(monkeypatch, "hi\n", str(weightless))
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"safe-rlhf-chat: error: {weightless}: cannot load a causal LM (")
    assert err.count("\n") == 1


def test_rich_view_puts_the_arena_side_by_side() -> None:
    out = io.StringIO()
    view = chat_cli.RichView(["sft/model", "ppo/model"], out, echo_user=False)
    view.answers(["Knead the dough.", "I cannot help with that."])
    lines = out.getvalue().splitlines()
    assert "sft/model" in lines[0] and "ppo/model" in lines[0]
    assert "Knead the dough." in lines[1] and "I cannot help with that." in lines[1]


def test_labels_are_the_shortest_tails_that_differ() -> None:
    assert chat_cli._labels([Path("/r/round1/sft/model"), Path("/r/round1/ppo/model")]) == [
        "sft/model",
        "ppo/model",
    ]
    assert chat_cli._labels([Path("/a/x/sft/model"), Path("/b/x/sft/model")]) == [
        "a/x/sft/model",
        "b/x/sft/model",
    ]
    assert chat_cli._labels([Path("/r/sft/model")] * 2) == ["sft/model #1", "sft/model #2"]


def test_help_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from safe_rlhf_lightning.cli.chat import build_parser\n"
        "assert 'MODEL_DIR [MODEL_DIR2]' in build_parser().format_help()\n"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
