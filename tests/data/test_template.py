"""The prompt template."""

from __future__ import annotations

import pytest

from safe_rlhf_lightning.data import DEFAULT_TEMPLATE, PromptTemplate


def test_default_is_upstream_safe_rlhf_format() -> None:
    template = PromptTemplate()
    assert DEFAULT_TEMPLATE == "BEGINNING OF CONVERSATION: USER: {prompt} ASSISTANT:"
    assert template.format_prompt("Hi?") == "BEGINNING OF CONVERSATION: USER: Hi? ASSISTANT:"
    assert template.format_response("  \nHello.") == " Hello."


def test_braces_in_user_text_are_kept_verbatim() -> None:
    text = "Write {prompt} and {0} and {name!r} in a {{template}}"
    formatted = PromptTemplate().format_prompt(text)
    assert formatted == f"BEGINNING OF CONVERSATION: USER: {text} ASSISTANT:"
    assert PromptTemplate().format_response("{x}") == " {x}"


def test_custom_template_and_prefix() -> None:
    template = PromptTemplate("<user>{prompt}</user>\n", response_prefix="")
    assert template.format_prompt("a") == "<user>a</user>\n"
    assert template.format_response(" b ") == "b "


@pytest.mark.parametrize(("text", "count"), [("USER: ASSISTANT:", 0), ("{prompt}{prompt}", 2)])
def test_template_needs_prompt_placeholder_exactly_once(text: str, count: int) -> None:
    with pytest.raises(ValueError, match=f"exactly once, found it {count} times in") as caught:
        PromptTemplate(text)
    assert repr(text) in str(caught.value)


def test_extract_prompt_inverts_format_prompt() -> None:
    template = PromptTemplate()
    for prompt in ("How do I bake bread?", "a {brace} and ASSISTANT: inside"):
        assert template.extract_prompt(template.format_prompt(prompt)) == prompt
    with pytest.raises(ValueError, match="does not follow the prompt template"):
        template.extract_prompt("USER: hi")
