from django.urls import path

from studies import dashboard

# part of the project's "dashboards" namespace (histostudy/urls.py)
urlpatterns = [
    path("studies/<int:pk>/", dashboard.study_dashboard, name="study"),
    path("studies/<int:pk>/responses.csv", dashboard.export_responses, name="responses-csv"),
    path("studies/<int:pk>/imrmc.csv", dashboard.export_imrmc, name="imrmc-csv"),
    path("studies/<int:pk>/statistics.json", dashboard.export_statistics, name="statistics-json"),
]
