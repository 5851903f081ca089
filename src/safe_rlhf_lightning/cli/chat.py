"""``safe-rlhf-chat``: chat with a trained policy, or put two side by side (arena mode).

    safe-rlhf-chat runs/dev/round1/sft/model
    safe-rlhf-chat runs/dev/round1/sft/model runs/dev/round1/ppo_learned/model --seed 0
    printf 'hi\\n/exit\\n' | safe-rlhf-chat runs/dev/round1/sft/model

Each message is answered on its own (single-turn) unless the model's SFT data held multi-turn
dialogues (``sft_dialogue_turns`` > 1 in its ``config.json``, written by the SFT stage) or
``--history`` asks for the dialogue; the first line says which, per model.

torch and transformers are imported after the arguments are parsed, so ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from .env import apply_offline_defaults

if TYPE_CHECKING:
    from ..serve import Chatbot

PROG = "safe-rlhf-chat"
COMMANDS = {
    "/reset": "clear the dialogue history (multi-turn mode)",
    "/regenerate": "answer the last message again",
    "/help": "show the commands",
    "/exit": "quit; so do /quit, Ctrl-D and Ctrl-C",
}

STYLES = ("cyan", "magenta")  # panel borders: first model, second model


class ModelFolderError(Exception):
    """A MODEL_DIR that is missing or does not hold a causal LM (one line for the user)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        usage="%(prog)s [options] MODEL_DIR [MODEL_DIR2]",
        description="Chat with a trained policy; with two folders, every message is answered "
        "by both models side by side. Commands: "
        + ", ".join(f"{name} ({what})" for name, what in COMMANDS.items()),
    )
    parser.add_argument(
        "model_dirs",
        nargs="+",
        metavar="MODEL_DIR",
        type=Path,
        help="a Hugging Face model folder (config.json, weights, tokenizer); two for the arena",
    )
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--temperature", type=float, default=1.0, help="0 for greedy decoding")
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--repetition-penalty", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=None, help="make the answers reproducible")
    parser.add_argument(
        "--history",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="keep the earlier turns in each prompt (--history) or answer each message on its "
        "own (--no-history); default: multi-turn only for a model whose SFT data held "
        "multi-turn dialogues (sft_dialogue_turns > 1 in its config.json)",
    )
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="run Python code shipped with the model (off by default)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if len(args.model_dirs) > 2:
        parser.error("give one MODEL_DIR to chat, or two for the arena")
    apply_offline_defaults()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        bots = _load_chatbots(args)
    except ModelFolderError as error:
        sys.stderr.write(f"{PROG}: error: {error}\n")
        raise SystemExit(2) from None
    view = _make_view(_labels(args.model_dirs), sys.stdout, echo_user=not sys.stdin.isatty())
    if sys.stdin.isatty():
        view.note(f"Chatting with {', '.join(view.labels)}. /help lists the commands.")
    for label, bot in zip(view.labels, bots, strict=True):
        view.note(mode_note(label, bot, args.history))
    try:
        chat_loop(bots, _read_lines(sys.stdin), view)
    except KeyboardInterrupt:
        view.note("")
    return 0


def chat_loop(bots: Sequence[Chatbot], lines: Iterator[str], view: PlainView) -> None:
    """Answer every line with every bot until ``/exit`` or the lines run out."""
    for line in lines:
        text = line.strip()
        if not text:
            continue
        view.user(text)
        command = text.split()[0] if text.startswith("/") else None
        if command in ("/exit", "/quit"):
            return
        if command == "/reset":
            for bot in bots:
                bot.reset()
            view.note("(the dialogue history is cleared)")
        elif command == "/help":
            view.note("\n".join(f"{name:<12} {what}" for name, what in COMMANDS.items()))
        elif command not in (None, "/regenerate"):
            view.note(f"(unknown command {command}; /help lists the commands)")
        else:
            view.answers([_answer(bot, None if command else text) for bot in bots])


def mode_note(label: str, bot: Chatbot, asked: bool | None) -> str:
    """One line: whether ``bot`` keeps the dialogue in its prompts, and why."""
    from ..models import SFT_DIALOGUE_TURNS, sft_dialogue_turns

    turns = sft_dialogue_turns(bot.model.config)
    if asked is not None:
        why = "--history" if asked else "--no-history"
    elif turns is None:
        why = f"its config.json does not record {SFT_DIALOGUE_TURNS}; --history to keep it"
    elif turns > 1:
        why = f"its SFT data held dialogues of up to {turns} turns; --no-history to drop it"
    else:
        why = "it was trained on single-turn examples; --history to keep the dialogue"
    if bot.keeps_history:
        return f"[{label}] multi-turn: earlier turns stay in the prompt ({why})"
    return f"[{label}] single-turn: each message is answered on its own ({why})"


def _answer(bot: Chatbot, text: str | None) -> str:
    """``bot``'s reply to ``text`` (None: regenerate), or why there is none, in its place (in the
    arena one model's tokenizer may find a message too long that the other's does not)."""
    from ..serve import ChatError

    try:
        return bot.reply(text) if text is not None else bot.regenerate()
    except ChatError as error:
        return f"({error})"


class PlainView:
    """Labelled plain text, for pipes and files."""

    def __init__(self, labels: list[str], out: TextIO, *, echo_user: bool) -> None:
        self.labels, self.out, self.echo_user = labels, out, echo_user

    def user(self, text: str) -> None:
        if self.echo_user:
            self._write(f"USER: {text}")

    def answers(self, answers: list[str]) -> None:
        for label, answer in zip(self.labels, answers, strict=True):
            self._write(f"[{label}] {answer}")

    def note(self, text: str) -> None:
        self._write(text)

    def _write(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()


class RichView(PlainView):
    """Answers in panels, side by side in the arena, for a terminal."""

    def __init__(self, labels: list[str], out: TextIO, *, echo_user: bool) -> None:
        from rich.console import Console

        super().__init__(labels, out, echo_user=echo_user)
        self.console = Console(file=out, highlight=False)

    def answers(self, answers: list[str]) -> None:
        from rich.panel import Panel
        from rich.table import Table
        from rich.text import Text

        # A grid with equal columns keeps the arena side by side however long the answers are.
        grid = Table.grid(expand=True, padding=(0, 1))
        for _ in answers:
            grid.add_column(ratio=1)
        grid.add_row(
            *(
                Panel(Text(answer), title=label, title_align="left", border_style=style)
                for label, answer, style in zip(self.labels, answers, STYLES, strict=False)
            )
        )
        self.console.print(grid)

    def _write(self, text: str) -> None:
        self.console.print(text, markup=False)


def _make_view(labels: list[str], out: TextIO, *, echo_user: bool) -> PlainView:
    view = RichView if out.isatty() else PlainView
    return view(labels, out, echo_user=echo_user)


def _read_lines(stream: TextIO) -> Iterator[str]:
    """Lines from ``stream``; with ``input()`` in a terminal, for line editing."""
    if not stream.isatty():
        for line in stream:
            yield line.rstrip("\n")
        return
    while True:
        try:
            yield input("USER: ")
        except EOFError:
            return


def _labels(folders: Sequence[Path]) -> list[str]:
    """The shortest path tails (two parts at least) that tell the folders apart."""
    parts = [folder.resolve().parts for folder in folders]
    for depth in range(2, max(len(p) for p in parts) + 1):
        labels = ["/".join(p[-depth:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
    # The same folder twice (a sampling comparison): number them.
    return [f"{'/'.join(p[-2:])} #{index}" for index, p in enumerate(parts, start=1)]


def _check_model_folder(folder: Path) -> None:
    from ..models import is_score_model_folder

    if not folder.is_dir():
        raise ModelFolderError(f"{folder}: no such folder")
    config = folder / "config.json"
    if not config.is_file():
        raise ModelFolderError(f"{folder}: not a model folder (no config.json)")
    try:
        json.loads(config.read_text())
    except ValueError as error:
        raise ModelFolderError(f"{folder}: config.json is not valid JSON ({error})") from None
    if is_score_model_folder(folder):
        raise ModelFolderError(f"{folder}: holds a score model (reward/cost), not a policy")


def _load_chatbots(args: argparse.Namespace) -> list[Chatbot]:
    for folder in args.model_dirs:
        _check_model_folder(folder)
    import torch
    from transformers.utils import logging as transformers_logging

    from ..serve import Chatbot, GenerationSettings

    transformers_logging.disable_progress_bar()  # keep the terminal for the dialogue

    settings = GenerationSettings(
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        repetition_penalty=args.repetition_penalty,
        seed=args.seed,
    )
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    bots = []
    for folder in args.model_dirs:
        model, tokenizer = _load_policy(folder, args.trust_remote_code)
        try:
            bots.append(
                Chatbot(model.to(device), tokenizer, settings=settings, history=args.history)
            )
        except ValueError as error:
            raise ModelFolderError(f"{folder}: {error}") from None
    return bots


def _load_policy(folder: Path, trust_remote_code: bool):
    from ..models import load_causal_lm, load_tokenizer

    try:
        tokenizer = load_tokenizer(str(folder), trust_remote_code=trust_remote_code)
        model = load_causal_lm(str(folder), trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelFolderError(f"{folder}: cannot load a causal LM ({reason})") from None
    if tokenizer.pad_token is None:
        # One prompt per call needs no real padding; generate only wants a pad id.
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    return model, tokenizer


if __name__ == "__main__":
    sys.exit(main())
