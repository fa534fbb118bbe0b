"""Course pictures get their intrinsic size, measured once here for pictures already stored."""

from django.db import migrations, models


def measure_stored(apps, schema_editor):
    from lessons.images import image_size

    asset_model = apps.get_model("lessons", "CourseAsset")
    for asset in asset_model.objects.all().iterator():
        size = image_size(asset.path, bytes(asset.content))
        if size:
            asset.width, asset.height = size
            asset.save(update_fields=["width", "height"])


class Migration(migrations.Migration):
    dependencies = [
        ("lessons", "0006_broker_from_registry"),
    ]

    operations = [
        migrations.AddField(
            model_name="courseasset",
            name="height",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="courseasset",
            name="width",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.RunPython(measure_stored, migrations.RunPython.noop),
    ]
