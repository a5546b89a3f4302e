from django.db import models


class Visit(models.Model):
    """One row per page view, so every replica's writes add up."""

    at = models.DateTimeField(auto_now_add=True)
    served_by = models.CharField(max_length=64)
