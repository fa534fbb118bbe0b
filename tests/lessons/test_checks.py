"""A failed check tells what is wrong in the broker, never the solution's code: the reason, and the lint that guards it."""

import shutil
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import translation

from lessons.checks import check_leaks, check_reason, reason_leaks

MINI = Path(__file__).resolve().parents[1] / "fixtures" / "course-mini"
HEAD = '---\ntitle: T\nslug: leaky\nnumber: "9"\norder: 9\nbroker: kafka\nestimated_minutes: 5\nobjectives: []\n---\n'
SOLUTION = """import os
from kafka.admin import KafkaAdminClient, NewTopic

admin = KafkaAdminClient(bootstrap_servers=os.environ["BOOTSTRAP_SERVERS"])
admin.create_topics([NewTopic("orders", num_partitions=3, replication_factor=1)])
"""


def exercise(check: str) -> str:
    return (
        HEAD + "\n::: exercise id=e\n### E\n\n```python cell id=e-starter role=starter\npass\n```\n\n"
        "```hint\nA hint.\n```\n\n"
        f"```python cell id=e-solution role=solution\n{SOLUTION}```\n\n"
        f"```python cell id=e-check role=check\n{check}```\n:::\n"
    )


def test_the_reason_is_the_assertion_message_of_the_checks_output():
    output = 'Traceback (most recent call last):\n  File "<cell>", line 3, in <module>\nAssertionError: Топика orders нет\n'
    assert check_reason({"status": 1, "output": output}) == "Топика orders нет"
    with translation.override("ru"):
        assert check_reason({"status": -9, "reason": "timeout", "output": ""}) == "Проверка не уложилась во время."
    with translation.override("en"):
        assert check_reason({"status": -9, "reason": "timeout", "output": ""}) == "The check ran out of time."


def test_a_reason_that_gives_away_a_line_or_a_call_of_the_solution_is_caught():
    # Quotes and spaces do not hide a line; a call gives the answer away on its own.
    assert (
        reason_leaks(
            "Создайте топик: admin.create_topics([NewTopic('orders', num_partitions=3, replication_factor=1)])", SOLUTION
        )
        == 'admin.create_topics([NewTopic("orders", num_partitions=3, replication_factor=1)])'
    )
    assert reason_leaks("Вызовите `admin.create_topics(...)`", SOLUTION) == "admin.create_topics("
    assert reason_leaks("Топик orders есть, но в нём партиций: 1, а упражнение ждёт 3", SOLUTION) is None


def test_messages_of_asserts_raises_and_fstrings_are_all_looked_at():
    check = (
        "count = 1\n"
        "assert count == 3, f'партиций {count}: вызовите admin.create_topics(...)'\n"
        "if count:\n"
        "    raise AssertionError('нужно ' + 'NewTopic(\"orders\", ...)')\n"
        "assert count, 'Топика orders нет'\n"
    )
    assert [line for line, _ in check_leaks(check=check, solution=SOLUTION)] == [2, 4]


def test_course_lint_rejects_a_check_whose_message_contains_the_solution(tmp_path, capsys):
    shutil.copytree(MINI, tmp_path / "c")
    check = 'import os\nassert False, (\n    "Топика orders нет. "\n    "admin.create_topics([NewTopic(\'orders\', num_partitions=3, replication_factor=1)])"\n)\n'
    (tmp_path / "c" / "9-leaky.md").write_text(exercise(check))
    with pytest.raises(CommandError):
        call_command("course_lint", str(tmp_path / "c"))
    err = capsys.readouterr().err
    # The fence of the check opens on line 30; the assert is the check's second line.
    assert "9-leaky.md:32: проверка «e-check» выдаёт решение" in err, err
    assert "admin.create_topics(" in err
    (tmp_path / "c" / "9-leaky.md").write_text(exercise('assert False, "Топика orders в брокере нет"\n'))
    call_command("course_lint", str(tmp_path / "c"))


TERMINAL_SOLUTION = "nats stream add RETURNS --subjects 'returns.>' --retention work --defaults\nnats consumer add RETURNS refunds --max-deliver=3\n"


def test_a_reason_that_names_a_command_or_an_option_of_a_terminal_solution_is_caught():
    assert reason_leaks("Поставьте --max-deliver 3", TERMINAL_SOLUTION, shell=True) == "--max-deliver"
    assert reason_leaks("Запустите nats  consumer add", TERMINAL_SOLUTION, shell=True) == "nats consumer add"
    assert (
        reason_leaks("Потребитель refunds доставит сообщение до -1 раз, а упражнение ждёт 3", TERMINAL_SOLUTION, shell=True)
        is None
    )
    # Read as Python, the same text gives only its lines away.
    assert reason_leaks("Поставьте --max-deliver 3", TERMINAL_SOLUTION) is None


def test_course_lint_rejects_a_terminal_exercises_reason_that_names_an_option_of_its_solution(tmp_path, capsys):
    shutil.copytree(MINI, tmp_path / "c")
    text = (
        HEAD.replace("broker: kafka", "broker: nats") + "\n::: exercise id=e\n### E\n\n"
        "```terminal role=starter id=e-starter\nnats stream ls\n```\n\n```hint\nA hint.\n```\n\n"
        f"```terminal role=solution id=e-solution\n{TERMINAL_SOLUTION}```\n\n"
        "```python cell id=e-check role=check\nassert False, 'Поток RETURNS без --retention'\n```\n:::\n"
    )
    (tmp_path / "c" / "9-leaky.md").write_text(text)
    with pytest.raises(CommandError):
        call_command("course_lint", str(tmp_path / "c"))
    assert "проверка «e-check» выдаёт решение: в её сообщении об ошибке есть `--retention`" in capsys.readouterr().err
    (tmp_path / "c" / "9-leaky.md").write_text(text.replace(" без --retention", " хранит всё"))
    call_command("course_lint", str(tmp_path / "c"))
