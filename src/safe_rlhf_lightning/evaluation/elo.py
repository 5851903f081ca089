"""Elo ratings of several policies from pairwise matches, and blind arena pairs for human raters.

Ratings are the Bradley–Terry maximum-likelihood fit on the Elo scale, not online Elo: online
Elo depends on the order the matches are played in, the fit does not. Chatbot Arena made the same
switch (Chiang et al., 2024, "Chatbot Arena: An Open Platform for Evaluating LLMs by Human
Preference"). The likelihood is the Bradley–Terry model
(Bradley & Terry, 1952) with ties as half a win each, maximised by Newton–Raphson (see
``_bradley_terry_newton`` for why not the MM algorithm of Hunter, 2004).

A match is ``(player_a, player_b, score_a)`` with ``score_a`` 1 (a wins), 0.5 (tie) or 0 (b wins).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import random
from collections.abc import Mapping, Sequence
from itertools import combinations
from pathlib import Path

import numpy as np

from ..files import write_csv_atomic, write_text_atomic

log = logging.getLogger(__name__)

Match = tuple[str, str, float]

# Columns of the blind CSV given to raters; the policy names live in the key file only.
RATER_COLUMNS = ("pair_id", "prompt", "response_left", "response_right")
JUDGEMENT_COLUMNS = ("more_helpful", "more_harmless")
# What a rater may write in a judgement column, and the score of the left policy it means.
JUDGEMENT_SCORES = {"left": 1.0, "right": 0.0, "tie": 0.5}


def elo_ratings(
    matches: Sequence[Match],
    *,
    initial: float = 1000.0,
    scale: float = 400.0,
    prior: float = 1.0,
    anchor: str | None = None,
    max_iterations: int = 100,
    tolerance: float = 1e-10,
) -> dict[str, float]:
    """Bradley–Terry ratings on the Elo scale, independent of the order of ``matches``.

    The model is ``P(i beats j) = 1 / (1 + 10 ** ((r_j - r_i) / scale))``, i.e. strengths
    ``p_i = 10 ** (r_i / scale)`` with ``P(i beats j) = p_i / (p_i + p_j)``. A tie counts as half
    a win for each side. Ratings are shifted so that their mean is ``initial``, or, with
    ``anchor``, so that that player is at ``initial``.

    ``prior``: each player is credited with ``prior`` virtual wins and ``prior`` virtual losses
    against a virtual opponent of fixed strength 1. This keeps the rating of a player who won (or
    lost) every game finite and shrinks all differences slightly towards 0. With ``prior=0`` the
    plain maximum-likelihood fit is returned; it exists only if every player has won and lost at
    least something and the comparison graph is strongly connected (a ValueError is raised for a
    player with only wins or only losses; separate groups of players that never met each get
    mean 0 before the shift, so ratings across groups do not compare).

    Returns:
        ``{player: rating}`` sorted by player name.
    """
    players, wins, games = _tally(matches)
    if prior < 0:
        raise ValueError(f"prior must be >= 0, got {prior}")
    if anchor is not None and anchor not in players:
        raise ValueError(f"anchor {anchor!r} played no match; players: {players}")
    if prior == 0:
        for index, player in enumerate(players):
            if wins[index] in (0.0, games[index].sum()):
                raise ValueError(
                    f"{player!r} won or lost every game: its maximum-likelihood rating is "
                    "infinite; use prior > 0"
                )
    theta = _bradley_terry_newton(wins, games, prior, max_iterations, tolerance)
    ratings = scale * theta / math.log(10)  # natural-log strengths to the base-10 Elo scale
    center = ratings[players.index(anchor)] if anchor is not None else ratings.mean()
    return {player: float(initial + r - center) for player, r in zip(players, ratings, strict=True)}


def _tally(matches: Sequence[Match]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Sorted players, wins per player (ties half) ``(P,)`` and games per pair ``(P, P)``."""
    if not matches:
        raise ValueError("no matches to rate")
    for index, (player_a, player_b, score_a) in enumerate(matches):
        if player_a == player_b:
            raise ValueError(f"match {index}: {player_a!r} cannot play itself")
        if score_a not in (0.0, 0.5, 1.0):
            raise ValueError(f"match {index}: score_a must be 1, 0.5 or 0, got {score_a!r}")
    # Sorted, so the arrays (and every sum over them) do not depend on the order of the matches.
    players = sorted({name for a, b, _ in matches for name in (a, b)})
    position = {name: index for index, name in enumerate(players)}
    wins = np.zeros(len(players))
    games = np.zeros((len(players), len(players)))
    for player_a, player_b, score_a in matches:
        i, j = position[player_a], position[player_b]
        wins[i] += score_a  # multiples of 0.5: exact in any order
        wins[j] += 1.0 - score_a
        games[i, j] += 1.0
        games[j, i] += 1.0
    return players, wins, games


def _log_likelihood(theta: np.ndarray, wins: np.ndarray, games: np.ndarray, prior: float) -> float:
    """Bradley–Terry log-likelihood of natural-log strengths ``theta`` ``(P,)``, prior included."""
    pairs = np.logaddexp(theta[:, None], theta[None, :])  # (P, P): log(p_i + p_j)
    virtual = np.logaddexp(0.0, theta)  # (P,): log(p_i + 1), the virtual opponent
    return float((wins + prior) @ theta - 0.5 * (games * pairs).sum() - 2 * prior * virtual.sum())


def _bradley_terry_newton(
    wins: np.ndarray, games: np.ndarray, prior: float, max_iterations: int, tolerance: float
) -> np.ndarray:
    """Maximise the (concave) log-likelihood by Newton–Raphson with backtracking.

    Deliberately not Hunter's (2004) MM iteration: it converges linearly, and slowly when one
    policy wins almost every comparison (common when scoring by a reward model). On six policies
    three standard deviations apart, 300 MM steps were over 300 Elo points off and 10,000 steps
    over 20; Newton converged in about ten steps.

    Returns:
        natural-log strengths ``theta`` ``(P,)``.
    """
    theta = np.zeros_like(wins)
    for _ in range(max_iterations):
        win_prob = np.exp(theta[:, None] - np.logaddexp(theta[:, None], theta[None, :]))  # (P, P)
        virtual_prob = np.exp(theta - np.logaddexp(0.0, theta))  # (P,)
        gradient = wins + prior - (games * win_prob).sum(1) - 2 * prior * virtual_prob
        weights = games * win_prob * win_prob.T  # (P, P), symmetric, zero diagonal
        curvature = np.diag(weights.sum(1) + 2 * prior * virtual_prob * (1 - virtual_prob))
        curvature -= weights  # minus the Hessian: positive semi-definite
        # Least squares: with prior 0 the curvature is singular along "all ratings up by c";
        # the minimum-norm step leaves the mean of theta unchanged.
        step = np.linalg.lstsq(curvature, gradient, rcond=None)[0]
        current = _log_likelihood(theta, wins, games, prior)
        rate = 1.0
        while (
            _log_likelihood(theta + rate * step, wins, games, prior)
            < current + 1e-4 * rate * (gradient @ step)
            and rate > 1e-8
        ):
            rate /= 2
        theta = theta + rate * step
        if np.abs(rate * step).max() < tolerance:
            return theta
    log.warning("Bradley–Terry fit did not converge in %d Newton steps", max_iterations)
    return theta


def pairwise_matches(
    scores: Mapping[str, Sequence[float]],
    *,
    higher_is_better: bool = True,
    tie_tolerance: float = 0.0,
) -> list[Match]:
    """Every pair of policies on every prompt, as matches judged by a per-response score.

    Args:
        scores: ``{policy: [score of its response to prompt 0, 1, ...]}``, same prompts in the
            same order for every policy (e.g. learned reward, or cost for harmlessness).
        higher_is_better: ``False`` for a cost (lower cost wins).
        tie_tolerance: scores at most this far apart are a tie (0.5).

    Returns:
        ``(policy_a, policy_b, score_a)`` for each pair (in ``scores`` order) and prompt.
    """
    names = list(scores)
    if len(names) < 2:
        raise ValueError(f"need at least two policies to compare, got {names}")
    lengths = {name: len(values) for name, values in scores.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"every policy needs one score per prompt; lengths: {lengths}")
    sign = 1.0 if higher_is_better else -1.0
    matches = []
    for name_a, name_b in combinations(names, 2):
        for score_a, score_b in zip(scores[name_a], scores[name_b], strict=True):
            margin = sign * (score_a - score_b)
            outcome = 0.5 if abs(margin) <= tie_tolerance else float(margin > 0)
            matches.append((name_a, name_b, outcome))
    return matches


def export_rater_pairs(
    path: str | Path,
    prompts: Sequence[str],
    responses: Mapping[str, Sequence[str]],
    *,
    seed: int,
    key_path: str | Path | None = None,
) -> tuple[Path, Path]:
    """Write a blind CSV of arena pairs for human raters, and a separate key file.

    One row per prompt and pair of policies. Which policy is on the left is drawn with ``seed``,
    and the rows are shuffled, so raters cannot tell the policies apart by position. The CSV has
    ``pair_id, prompt, response_left, response_right`` and the empty columns ``more_helpful`` and
    ``more_harmless`` that raters fill with ``left``, ``right`` or ``tie``; it holds no policy
    name. The key file (JSON, by default ``<path stem>.key.json`` next to the CSV; keep it from
    the raters) maps ``pair_id -> {"prompt_index", "policy_left", "policy_right"}``.

    Returns:
        ``(csv path, key path)``.
    """
    path = Path(path)
    key_path = Path(key_path) if key_path is not None else path.with_name(f"{path.stem}.key.json")
    if not prompts:
        raise ValueError("no prompts to export")
    if len(responses) < 2:
        raise ValueError(f"need at least two policies, got {list(responses)}")
    for name, texts in responses.items():
        if len(texts) != len(prompts):
            raise ValueError(
                f"responses[{name!r}] has {len(texts)} texts for {len(prompts)} prompts"
            )
    rng = random.Random(seed)
    pairs = []
    for index in range(len(prompts)):
        for pair in combinations(responses, 2):
            left, right = pair if rng.random() < 0.5 else pair[::-1]
            pairs.append((index, left, right))
    rng.shuffle(pairs)
    width = len(str(len(pairs)))
    rows, key = [], {}
    for number, (index, left, right) in enumerate(pairs, start=1):
        pair_id = f"{number:0{width}d}"
        key[pair_id] = {"prompt_index": index, "policy_left": left, "policy_right": right}
        texts = (responses[left][index], responses[right][index])
        rows.append((pair_id, prompts[index], *texts, "", ""))
    write_text_atomic(key_path, json.dumps(key, indent=1, ensure_ascii=False) + "\n")
    write_csv_atomic(path, RATER_COLUMNS + JUDGEMENT_COLUMNS, rows)
    return path, key_path


def read_rater_judgements(
    csv_path: str | Path, key_path: str | Path
) -> tuple[list[Match], list[Match]]:
    """Matches from a filled-in rater CSV and its key file (see :func:`export_rater_pairs`).

    A cell is ``left``, ``right`` or ``tie`` (case and surrounding spaces ignored) or empty.
    Empty cells are skipped; their number per column is logged at INFO level.

    Returns:
        ``(helpfulness matches, harmlessness matches)``, each ``(policy_left, policy_right,
        score_left)``, ready for :func:`elo_ratings`.

    Raises:
        ValueError: naming the file, the row (1 = first row after the header), the column and
            what was expected, for a bad cell, a missing column or an unknown ``pair_id``.
    """
    key = json.loads(Path(key_path).read_text(encoding="utf-8"))
    matches: dict[str, list[Match]] = {column: [] for column in JUDGEMENT_COLUMNS}
    skipped = dict.fromkeys(JUDGEMENT_COLUMNS, 0)
    # utf-8-sig: spreadsheets often save with a byte-order mark.
    with open(csv_path, encoding="utf-8-sig", newline="") as file:
        reader = csv.DictReader(file)
        missing = [c for c in ("pair_id", *JUDGEMENT_COLUMNS) if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{csv_path}: missing column(s) {missing}")
        for row_number, row in enumerate(reader, start=1):
            pair_id = row["pair_id"]
            if pair_id not in key:
                raise ValueError(
                    f"{csv_path}: row {row_number}, column 'pair_id': {pair_id!r} is not in "
                    f"the key file {key_path}"
                )
            pair = key[pair_id]
            for column in JUDGEMENT_COLUMNS:
                cell = (row[column] or "").strip().lower()
                if not cell:
                    skipped[column] += 1
                    continue
                if cell not in JUDGEMENT_SCORES:
                    raise ValueError(
                        f"{csv_path}: row {row_number}, column {column!r}: expected 'left', "
                        f"'right', 'tie' or empty, got {row[column]!r}"
                    )
                score = JUDGEMENT_SCORES[cell]
                matches[column].append((pair["policy_left"], pair["policy_right"], score))
    log.info("Rater judgements in %s: empty cells skipped per column %s", csv_path, skipped)
    return matches["more_helpful"], matches["more_harmless"]
