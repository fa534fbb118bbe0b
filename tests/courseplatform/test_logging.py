"""Logs are one JSON object per line, carrying the ids a record was given."""

import json
import logging

from django.conf import settings
from django.utils.module_loading import import_string


def test_a_log_line_is_json_with_the_records_extra_fields():
    options = dict(settings.LOGGING["formatters"]["json"])
    formatter = import_string(options.pop("()"))(**{k: v for k, v in options.items() if k != "format"}, fmt=options["format"])
    record = logging.makeLogRecord({"name": "sandboxes.tasks", "levelname": "INFO", "levelno": 20, "msg": "готово %s"})
    record.args = ("sb-7",)
    record.sandbox_id = 7
    record.user_id = 3
    line = json.loads(formatter.format(record))
    assert line["message"] == "готово sb-7"
    assert (line["level"], line["logger"], line["sandbox_id"], line["user_id"]) == ("INFO", "sandboxes.tasks", 7, 3)
    assert line["time"].endswith("+00:00")
