"""The portal's Celery application.

Tasks use Celery's ``DjangoTask`` base, so ``task.delay_on_commit(...)`` enqueues only once the
surrounding transaction has committed (a task never sees a row that is not there yet).
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("portal", task_cls="celery.contrib.django.task:DjangoTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
