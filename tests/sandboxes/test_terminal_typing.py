"""How a terminal solution is cut into the commands typed one after another (sandboxes/terminal_typing.py)."""

from sandboxes.terminal_typing import command_lines


def test_commands_are_typed_one_a_line_with_continued_lines_joined_and_blank_lines_dropped():
    text = "nats stream add RETURNS \\\n  --subjects 'returns.>' \\\n  --defaults\n\n   \nnats pub returns.x hi\n"
    assert command_lines(text) == ["nats stream add RETURNS    --subjects 'returns.>'    --defaults", "nats pub returns.x hi"]
    assert command_lines("echo a \\") == ["echo a  "]
