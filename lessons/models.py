"""Courses, chapters and what a chapter contains (cells, exercises), and learners' progress.

A chapter's Markdown file (``source``) is the truth; cells and exercises are
derived from it whenever it is saved, so they are never edited on their own.

A learner's progress (chapters read, exercise attempts, cell drafts) is kept by
the course's *family* (the original course's slug, shared by its translations),
the chapter's slug and the exercise's or cell's key: the names both editions
share. So a chapter read in Russian is read in English, and an instructor's save,
which rebuilds cells and exercises, takes nothing a learner has with it.
"""

from django.conf import settings
from django.db import models

from sandboxes.broker_list import broker_label, broker_validate


class Course(models.Model):
    slug = models.SlugField(unique=True)
    title = models.CharField(max_length=200)
    language = models.CharField(max_length=8, default="ru")
    translation_of = models.SlugField(blank=True, help_text="slug of the course this one is a translation of")
    source = models.TextField(help_text="course.md as it is in the repository")
    glossary = models.TextField(blank=True, default="", help_text="glossary.md as it is in the repository, if any")
    published = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Who teaches it: their powers over its learners (the class page, their sandboxes) end at its family.
    instructors = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="courses_taught")

    def __str__(self) -> str:
        return self.title

    @property
    def family(self) -> str:
        """The slug a course shares with its translations (the original's): progress is kept by it."""
        return self.translation_of or self.slug


class Chapter(models.Model):
    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="chapters")
    slug = models.SlugField()
    filename = models.CharField(max_length=200)
    number = models.CharField(max_length=16)
    title = models.CharField(max_length=300)
    order = models.IntegerField()
    # Validated against the broker registry, not fixed choices: a new broker kind needs no migration.
    broker = models.CharField(max_length=16, validators=[broker_validate])
    estimated_minutes = models.PositiveIntegerField()
    objectives = models.JSONField(default=list)
    source = models.TextField(help_text="the chapter's Markdown file, front matter included")
    revision = models.PositiveIntegerField(default=0, help_text="number of the latest revision; a save names the one it edited")
    published = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["order", "number"]
        constraints = [models.UniqueConstraint(fields=["course", "slug"], name="chapter_slug_unique_in_course")]

    def __str__(self) -> str:
        return f"{self.number} {self.title}"

    @property
    def broker_label(self) -> str:
        """The broker's product name in the active language, from the registry."""
        return broker_label(self.broker)


class Exercise(models.Model):
    chapter = models.ForeignKey(Chapter, on_delete=models.CASCADE, related_name="exercises")
    key = models.SlugField(help_text="the id= of the exercise block")
    title = models.CharField(max_length=300)
    position = models.PositiveIntegerField()
    hints = models.JSONField(default=list, help_text="Markdown of each hint, in order")

    class Meta:
        ordering = ["position"]
        constraints = [models.UniqueConstraint(fields=["chapter", "key"], name="exercise_key_unique_in_chapter")]

    def __str__(self) -> str:
        return self.title


class Cell(models.Model):
    ROLES = [("run", "run"), ("setup", "setup"), ("starter", "starter"), ("solution", "solution"), ("check", "check")]

    chapter = models.ForeignKey(Chapter, on_delete=models.CASCADE, related_name="cells")
    exercise = models.ForeignKey(Exercise, on_delete=models.CASCADE, null=True, blank=True, related_name="cells")
    key = models.SlugField(help_text="the id= of the cell")
    role = models.CharField(max_length=10, choices=ROLES, default="run")
    broker = models.CharField(max_length=16, validators=[broker_validate])
    timeout = models.PositiveIntegerField(default=30)
    code = models.TextField()
    # "terminal": an exercise's starter or solution typed in the sandbox's terminal, never run as Python.
    language = models.CharField(max_length=10, choices=[("python", "python"), ("terminal", "terminal")], default="python")
    position = models.PositiveIntegerField()
    line = models.PositiveIntegerField(help_text="line of the fence in the chapter file")

    class Meta:
        ordering = ["position"]
        constraints = [models.UniqueConstraint(fields=["chapter", "key"], name="cell_key_unique_in_chapter")]

    def __str__(self) -> str:
        return f"{self.chapter_id}:{self.key}"


class ChapterRead(models.Model):
    """The learner has read this chapter, in whichever edition."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chapters_read")
    course_family = models.SlugField(help_text="the course family: the original course's slug")
    chapter_slug = models.SlugField(help_text="the chapter's slug, the same in every edition")
    read_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "course_family", "chapter_slug"], name="chapter_read_once_per_family")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} read {self.course_family}/{self.chapter_slug}"


class StepDone(models.Model):
    """The learner passed this step of a chapter (lessons/steps.py), in whichever edition: steps are numbered alike."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="steps_done")
    course_family = models.SlugField(help_text="the course family: the original course's slug")
    chapter_slug = models.SlugField(help_text="the chapter's slug, the same in every edition")
    # The place of the step's first heading among the chapter's h2/h3 (lessons.steps.RenderedStep.section),
    # not its number: a step inserted before it leaves it passed, and every edition has it at the same place.
    step = models.PositiveSmallIntegerField(help_text="the step's first heading, counted among h2/h3 from 0")
    done_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "course_family", "chapter_slug", "step"], name="step_done_once_per_family")
        ]

    def __str__(self) -> str:
        return f"{self.user} passed step {self.step} of {self.course_family}/{self.chapter_slug}"


class ReadingPosition(models.Model):
    """Where a learner last was in a course, in whichever edition: the chapter and the section.

    The section is a heading's anchor ("" for the chapter's top) in the edition it was
    read in (``edition``); another edition finds the same section by its position
    (lessons.editions.section_translate).
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reading_positions")
    course_family = models.SlugField(help_text="the course family: the original course's slug")
    chapter_slug = models.SlugField()
    edition = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="+", help_text="where the anchor was read")
    anchor = models.CharField(max_length=200, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "course_family"], name="one_reading_position_per_family")]

    def __str__(self) -> str:
        return f"{self.user_id} at {self.course_family}/{self.chapter_slug}#{self.anchor}"


class ExerciseAttempt(models.Model):
    """One check of an exercise, in whichever edition; passed once means passed in every edition."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="exercise_attempts")
    course_family = models.SlugField(help_text="the course family: the original course's slug")
    chapter_slug = models.SlugField()
    exercise_key = models.SlugField(help_text="the exercise's key, the same in every edition")
    passed = models.BooleanField()
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["user", "course_family", "chapter_slug", "exercise_key", "passed"], name="attempt_by_exercise")
        ]

    def __str__(self) -> str:
        return (
            f"{self.user_id} {'passed' if self.passed else 'failed'} {self.course_family}/{self.chapter_slug}/{self.exercise_key}"
        )


class CellDraft(models.Model):
    """A learner's edited code of one cell, kept by course family, chapter and cell key so reloads (and the other edition) keep it."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="cell_drafts")
    course_family = models.SlugField(help_text="the course family: the original course's slug")
    chapter_slug = models.SlugField()
    cell_key = models.SlugField()
    code = models.TextField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "course_family", "chapter_slug", "cell_key"], name="one_draft_per_cell_per_family"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user_id}:{self.course_family}/{self.chapter_slug}:{self.cell_key}"


class CourseAsset(models.Model):
    """A picture of a course (``img/x.svg``), kept as bytes so export gives back the same file."""

    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="assets")
    path = models.CharField(max_length=300)
    content = models.BinaryField()
    # Its intrinsic size (lessons/images.py), written into <img> so the page keeps its place.
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["course", "path"], name="asset_path_unique_in_course")]

    def __str__(self) -> str:
        return self.path


class ChapterRevision(models.Model):
    """Every saved version of a chapter's file, so instructors can compare and restore."""

    chapter = models.ForeignKey(Chapter, on_delete=models.CASCADE, related_name="revisions")
    number = models.PositiveIntegerField()
    source = models.TextField()
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-number"]
        constraints = [models.UniqueConstraint(fields=["chapter", "number"], name="revision_number_unique")]

    def __str__(self) -> str:
        return f"{self.chapter_id} r{self.number}"
