"""Progress is kept by course family, chapter slug and key instead of by one edition's rows.

Before, a chapter read (or an exercise passed, a cell draft saved) in the English
edition was a row of that edition's chapter only, and every save of a chapter,
which rebuilds its exercises, deleted the attempts with them. Existing rows are
carried over: each gets its edition's family and its chapter's slug and key; where
both editions hold the same thing, one row stays (the first read, the latest draft).
"""

import django.db.models.deletion
from django.db import migrations, models


def _family(course) -> str:
    return course.translation_of or course.slug


def keys_from_rows(apps, schema_editor):
    ChapterRead = apps.get_model("lessons", "ChapterRead")
    ExerciseAttempt = apps.get_model("lessons", "ExerciseAttempt")
    CellDraft = apps.get_model("lessons", "CellDraft")
    reads_seen: set[tuple] = set()
    for read in ChapterRead.objects.select_related("chapter__course").order_by("read_at", "pk"):
        key = (read.user_id, _family(read.chapter.course), read.chapter.slug)
        if key in reads_seen:
            read.delete()  # the same chapter read in the other edition too: the first read stays
            continue
        reads_seen.add(key)
        read.course_family, read.chapter_slug = key[1], key[2]
        read.save(update_fields=["course_family", "chapter_slug"])
    for attempt in ExerciseAttempt.objects.select_related("exercise__chapter__course"):
        chapter = attempt.exercise.chapter
        attempt.course_family, attempt.chapter_slug = _family(chapter.course), chapter.slug
        attempt.exercise_key = attempt.exercise.key
        attempt.save(update_fields=["course_family", "chapter_slug", "exercise_key"])
    drafts_seen: set[tuple] = set()
    for draft in CellDraft.objects.select_related("chapter__course").order_by("-updated_at", "-pk"):
        cell = (draft.user_id, _family(draft.chapter.course), draft.chapter.slug, draft.cell_key)
        if cell in drafts_seen:
            draft.delete()  # an older draft of the same cell in the other edition: the latest stays
            continue
        drafts_seen.add(cell)
        # auto_now would stamp the migration's time; the learner's time is what "latest" means.
        CellDraft.objects.filter(pk=draft.pk).update(course_family=cell[1], chapter_slug=cell[2])


def rows_from_keys(apps, schema_editor):
    """Back to one edition's rows: the family's original edition; what it does not hold is dropped."""
    Chapter = apps.get_model("lessons", "Chapter")
    Exercise = apps.get_model("lessons", "Exercise")
    ChapterRead = apps.get_model("lessons", "ChapterRead")
    ExerciseAttempt = apps.get_model("lessons", "ExerciseAttempt")
    CellDraft = apps.get_model("lessons", "CellDraft")
    chapters = {(c.course.slug, c.slug): c for c in Chapter.objects.select_related("course")}
    exercises = {(e.chapter.course.slug, e.chapter.slug, e.key): e for e in Exercise.objects.select_related("chapter__course")}
    for model in (ChapterRead, CellDraft):
        for row in model.objects.all():
            chapter = chapters.get((row.course_family, row.chapter_slug))
            if chapter is None:
                row.delete()
            else:
                model.objects.filter(pk=row.pk).update(chapter=chapter)
    for attempt in ExerciseAttempt.objects.all():
        exercise = exercises.get((attempt.course_family, attempt.chapter_slug, attempt.exercise_key))
        if exercise is None:
            attempt.delete()
        else:
            ExerciseAttempt.objects.filter(pk=attempt.pk).update(exercise=exercise)


class Migration(migrations.Migration):
    dependencies = [
        ("lessons", "0003_course_translations"),
    ]

    operations = [
        migrations.AddField(
            model_name="chapterread",
            name="course_family",
            field=models.SlugField(default="", help_text="the course family: the original course's slug"),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="chapterread",
            name="chapter_slug",
            field=models.SlugField(default="", help_text="the chapter's slug, the same in every edition"),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="exerciseattempt",
            name="course_family",
            field=models.SlugField(default="", help_text="the course family: the original course's slug"),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="exerciseattempt",
            name="chapter_slug",
            field=models.SlugField(default=""),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="exerciseattempt",
            name="exercise_key",
            field=models.SlugField(default="", help_text="the exercise's key, the same in every edition"),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="celldraft",
            name="course_family",
            field=models.SlugField(default="", help_text="the course family: the original course's slug"),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="celldraft",
            name="chapter_slug",
            field=models.SlugField(default=""),
            preserve_default=False,
        ),
        # Nullable first, so that going back can re-add the columns before it fills them.
        migrations.AlterField(
            model_name="chapterread",
            name="chapter",
            field=models.ForeignKey(
                null=True, on_delete=django.db.models.deletion.CASCADE, related_name="reads", to="lessons.chapter"
            ),
        ),
        migrations.AlterField(
            model_name="exerciseattempt",
            name="exercise",
            field=models.ForeignKey(
                null=True, on_delete=django.db.models.deletion.CASCADE, related_name="attempts", to="lessons.exercise"
            ),
        ),
        migrations.AlterField(
            model_name="celldraft",
            name="chapter",
            field=models.ForeignKey(
                null=True, on_delete=django.db.models.deletion.CASCADE, related_name="drafts", to="lessons.chapter"
            ),
        ),
        migrations.RunPython(keys_from_rows, rows_from_keys),
        migrations.RemoveConstraint(model_name="chapterread", name="chapter_read_once"),
        migrations.RemoveConstraint(model_name="celldraft", name="one_draft_per_cell"),
        migrations.RemoveIndex(model_name="exerciseattempt", name="lessons_exe_user_id_351f37_idx"),
        migrations.RemoveField(model_name="chapterread", name="chapter"),
        migrations.RemoveField(model_name="exerciseattempt", name="exercise"),
        migrations.RemoveField(model_name="celldraft", name="chapter"),
        migrations.AddConstraint(
            model_name="chapterread",
            constraint=models.UniqueConstraint(
                fields=("user", "course_family", "chapter_slug"), name="chapter_read_once_per_family"
            ),
        ),
        migrations.AddConstraint(
            model_name="celldraft",
            constraint=models.UniqueConstraint(
                fields=("user", "course_family", "chapter_slug", "cell_key"), name="one_draft_per_cell_per_family"
            ),
        ),
        migrations.AddIndex(
            model_name="exerciseattempt",
            index=models.Index(
                fields=["user", "course_family", "chapter_slug", "exercise_key", "passed"], name="attempt_by_exercise"
            ),
        ),
    ]
