"""Reading a course's class: who learns it (in any of its editions), how far each got, which exercises trip them up."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db.models import Count

from .models import ChapterRead, Course, Exercise, ExerciseAttempt


@dataclass(frozen=True)
class LearnerLine:
    user: User
    chapters_read: int
    exercises_passed: int
    attempts: int


@dataclass(frozen=True)
class HardExercise:
    exercise: Exercise
    failures: int
    learners: int
    reasons: tuple[tuple[str, int], ...]  # most common failure reasons with their counts


@dataclass(frozen=True)
class ClassReport:
    course: Course
    chapters: int
    exercises: int
    learners: tuple[LearnerLine, ...]
    hardest: tuple[HardExercise, ...]


def course_class(*, course: Course, top: int = 5) -> ClassReport:
    """Everyone who read a chapter or tried an exercise of the course, in any edition, with their progress."""
    family = course.family
    slugs = set(course.chapters.values_list("slug", flat=True))
    exercises = {(e.chapter.slug, e.key): e for e in Exercise.objects.filter(chapter__course=course).select_related("chapter")}
    reads = ChapterRead.objects.filter(course_family=family, chapter_slug__in=slugs)
    attempts = ExerciseAttempt.objects.filter(course_family=family, chapter_slug__in=slugs)
    read_count = Counter(reads.values_list("user_id", flat=True))
    attempt_count = Counter(attempts.values_list("user_id", flat=True))
    passed: dict[int, set[tuple[str, str]]] = {}
    for user_id, chapter, key in attempts.filter(passed=True).values_list("user_id", "chapter_slug", "exercise_key"):
        if (chapter, key) in exercises:
            passed.setdefault(user_id, set()).add((chapter, key))
    users = User.objects.filter(pk__in=set(read_count) | set(attempt_count))
    lines = [LearnerLine(u, read_count[u.pk], len(passed.get(u.pk, ())), attempt_count[u.pk]) for u in users]
    learners = tuple(sorted(lines, key=lambda line: (-line.exercises_passed, -line.chapters_read, line.user.username)))
    failed = attempts.filter(passed=False)
    hardest = []
    rows = failed.values("chapter_slug", "exercise_key").annotate(n=Count("id"), who=Count("user", distinct=True)).order_by("-n")
    for row in rows:
        exercise = exercises.get((row["chapter_slug"], row["exercise_key"]))
        if exercise is None:  # no longer in the course
            continue
        reasons = Counter(
            failed.filter(chapter_slug=row["chapter_slug"], exercise_key=row["exercise_key"]).values_list("reason", flat=True)
        )
        hardest.append(HardExercise(exercise, row["n"], row["who"], tuple(reasons.most_common(3))))
        if len(hardest) == top:
            break
    return ClassReport(
        course=course,
        chapters=len(slugs),
        exercises=len(exercises),
        learners=learners,
        hardest=tuple(hardest),
    )
