"""Reading a course's class: who learns it, how far each got, which exercises trip them up."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db.models import Count, Q

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
    """Everyone who read a chapter or tried an exercise of the course, with their progress."""
    reads = ChapterRead.objects.filter(chapter__course=course)
    attempts = ExerciseAttempt.objects.filter(exercise__chapter__course=course)
    user_ids = set(reads.values_list("user_id", flat=True)) | set(attempts.values_list("user_id", flat=True))
    users = User.objects.filter(pk__in=user_ids).annotate(
        read_count=Count("chapters_read", filter=Q(chapters_read__chapter__course=course), distinct=True),
        passed_count=Count(
            "exercise_attempts__exercise",
            filter=Q(exercise_attempts__exercise__chapter__course=course, exercise_attempts__passed=True),
            distinct=True,
        ),
        attempt_count=Count("exercise_attempts", filter=Q(exercise_attempts__exercise__chapter__course=course), distinct=True),
    )
    learners = tuple(
        LearnerLine(u, u.read_count, u.passed_count, u.attempt_count)
        for u in users.order_by("-passed_count", "-read_count", "username")
    )
    failed = attempts.filter(passed=False)
    hardest = []
    for row in failed.values("exercise").annotate(n=Count("id"), who=Count("user", distinct=True)).order_by("-n")[:top]:
        reasons = Counter(failed.filter(exercise_id=row["exercise"]).values_list("reason", flat=True))
        hardest.append(
            HardExercise(
                Exercise.objects.select_related("chapter").get(pk=row["exercise"]),
                row["n"],
                row["who"],
                tuple(reasons.most_common(3)),
            )
        )
    return ClassReport(
        course=course,
        chapters=course.chapters.count(),
        exercises=Exercise.objects.filter(chapter__course=course).count(),
        learners=learners,
        hardest=tuple(hardest),
    )
