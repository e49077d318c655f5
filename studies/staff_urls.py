from django.urls import path

from studies import dashboard

app_name = "dashboards"
urlpatterns = [
    path("generation/", dashboard.generation_dashboard, name="generation"),
    path("experiments/<slug:name>/", dashboard.experiment_dashboard, name="experiment"),
    path("studies/<int:pk>/", dashboard.study_dashboard, name="study"),
    path("studies/<int:pk>/responses.csv", dashboard.export_responses, name="responses-csv"),
    path("studies/<int:pk>/imrmc.csv", dashboard.export_imrmc, name="imrmc-csv"),
    path("studies/<int:pk>/statistics.json", dashboard.export_statistics, name="statistics-json"),
]
