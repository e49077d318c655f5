from django.urls import path

from generation import dashboards

# part of the project's "dashboards" namespace (histostudy/urls.py)
urlpatterns = [
    path("generation/", dashboards.generation_dashboard, name="generation"),
    path("experiments/<slug:name>/", dashboards.experiment_dashboard, name="experiment"),
]
