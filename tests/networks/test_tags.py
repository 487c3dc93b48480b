"""A1111's extra-network tags: every form A1111 reads, the multipliers it derives, and malformed tags refused."""

import pytest

from sdui.networks.tags import NetworkTag, strip_tags
from sdui.params import GenerationParams


@pytest.mark.parametrize("text, te, unet, dyn", [
    ("<lora:style>", 1.0, 1.0, None),
    ("<lora:style:0.8>", 0.8, 0.8, None),
    ("<lora:style:-0.5>", -0.5, -0.5, None),
    ("<lora:style:0.5:1.2>", 0.5, 1.2, None),
    ("<lora:style:te=0.5:unet=1>", 0.5, 1.0, None),
    ("<lora:style:te=0.3>", 0.3, 0.3, None),  # A1111: the UNet multiplier defaults to the text encoder's
    ("<lora:style:0.7:unet=0>", 0.7, 0.0, None),
    ("<lora:style:1:1:16>", 1.0, 1.0, 16),
    ("<lora:style:1:dyn=8>", 1.0, 1.0, 8),
    ("<lyco:style:0.6>", 0.6, 0.6, None),
])
def test_a1111_forms_give_its_multipliers(text, te, unet, dyn):
    prompt, tags = strip_tags(f"a cat {text}, best")
    assert prompt == "a cat , best"
    assert tags == [NetworkTag(kind="lora", name="style", te=te, unet=unet, dyn=dyn, text=text)]


def test_several_tags_and_other_kinds_are_all_removed_in_order():
    prompt, tags = strip_tags("<lora:a:1>x <hypernet:h:0.5> y<LoRA:b:0.25>")
    assert prompt == "x  y"
    assert [(t.kind, t.name, t.te) for t in tags] == [("lora", "a", 1.0), ("hypernet", "h", 0.5), ("lora", "b", 0.25)]
    assert [t.is_lora for t in tags] == [True, False, True]


def test_extension_settings_are_kept_to_be_reported_not_refused():
    _, [tag] = strip_tags("<lora:a:1:lbw=ALL:start=2>")
    assert tag.unknown_settings == ("lbw", "start") and tag.te == 1.0


@pytest.mark.parametrize("text, message", [
    ("<lora:a:abc>", "the weight must be a number; got 'abc'"),
    ("<lora:a:nan>", "the weight must be a number"),
    ("<lora:a:te=x>", "the te must be a number; got 'x'"),
    ("<lora:a:1:1:two>", "dyn must be a whole number"),
    ("<lora:../../etc/passwd:1>", "cannot be a path outside its folder"),
    ("<lora:/abs/x:1>", "cannot be a path outside its folder"),
])
def test_malformed_tags_are_refused_before_any_work(text, message):
    with pytest.raises(ValueError, match=message):
        GenerationParams(negative_prompt=f"ok {text}").validate()
    with pytest.raises(ValueError) as info:
        GenerationParams(negative_prompt=f"ok {text}").validate()
    assert str(info.value).startswith("negative_prompt: ") and text in str(info.value)


def test_plain_angle_brackets_are_prompt_text():
    assert strip_tags("a <b> c <:x> d") == ("a <b> c <:x> d", [])
