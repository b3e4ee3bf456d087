"""The one progress wrapper: counted steps, byte bars and spinners on one display."""

import io

from rich.console import Console

from wattlm._progress import steps


def _console(terminal: bool) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=terminal, width=100), out


def test_counted_steps_byte_bars_and_spinners_are_drawn():
    console, out = _console(terminal=True)
    with steps(console=console) as s:
        advance = s.add("evaluating", total=3)
        for _ in range(3):
            advance()
        with s.bar("extract model", total=2000) as add_bytes:
            add_bytes(1500)
            add_bytes(500)
        with s.spinner("verify sha256"):
            pass
        s.done("load (cached)")
    text = out.getvalue()
    assert "evaluating" in text and "3/3" in text
    assert "extract model" in text and "2.0 kB/2.0 kB" in text
    assert "verify sha256" in text and "load (cached)" in text


def test_off_a_terminal_each_step_is_one_line_when_it_finishes():
    console, out = _console(terminal=False)
    with steps(console=console) as s:
        load = s.add("loading model")
        advance = s.add("torch batch 8", total=3)
        advance()
        assert out.getvalue() == ""  # nothing finished yet
        load(total=1)
        advance(2)
        with s.bar("extract model", total=2000) as add_bytes:
            add_bytes(2000)
        with s.spinner("verify sha256"):
            pass
        s.done("load (cached)")
        s.add("cut short", total=5)(2)
    lines = out.getvalue().splitlines()
    assert [line.rsplit("  ", 1)[0] for line in lines] == [
        "loading model",
        "torch batch 8  3/3",
        "extract model  2.0 kB/2.0 kB",
        "verify sha256",
        "load (cached)",
        "cut short  2/5",
    ]
    assert all(line.endswith(" s") for line in lines)


def test_terminal_only_is_silent_off_a_terminal():
    console, out = _console(terminal=False)
    with steps(console=console, terminal_only=True) as s:
        s.add("evaluating", total=1)()
    assert out.getvalue() == ""


def test_disabled_is_silent():
    console, out = _console(terminal=True)
    with steps(enabled=False, console=console) as s, s.bar("extract", total=10) as add_bytes:
        add_bytes(10)
    assert out.getvalue() == ""
