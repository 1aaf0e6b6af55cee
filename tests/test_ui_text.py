"""Untrusted text rendered in Markdown stays plain text."""

from __future__ import annotations

import markdown_it

from speechlm_demo.ui.text import plain

HOSTILE = '<script>alert(1)</script> **bold** [click](javascript:alert(1)) <img src=x onerror=alert(1)>\n# Title'


def test_hostile_transcripts_render_as_the_same_plain_text() -> None:
    rendered = markdown_it.MarkdownIt().render(plain(HOSTILE))
    assert "<script" not in rendered and "<img" not in rendered and "<a " not in rendered
    assert "<strong>" not in rendered and "<h1>" not in rendered
    assert "&lt;script&gt;alert(1)&lt;/script&gt; **bold** [click](javascript:alert(1))" in rendered


def test_ordinary_text_reads_the_same() -> None:
    render = markdown_it.MarkdownIt().render
    assert render(plain("Paris is the capital of France.")).strip() == "<p>Paris is the capital of France.</p>"
    assert render(plain("I'm sure it's 5 $ & \"more\" - ok: 3.5")).strip() == "<p>I'm sure it's 5 $ &amp; &quot;more&quot; - ok: 3.5</p>"
