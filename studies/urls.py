from django.urls import path

from studies import views

app_name = "studies"
urlpatterns = [
    path("", views.my_studies, name="my-studies"),
    path("<str:token>/", views.instructions, name="instructions"),
    path("<str:token>/trial/", views.trial, name="trial"),
    path("<str:token>/trial/<str:trial_token>/answer/", views.answer, name="answer"),
    path("<str:token>/trial/<str:trial_token>/image/", views.trial_image, name="image"),
    path(
        "<str:token>/trial/<str:trial_token>/image/<str:side>/",
        views.trial_image,
        name="image-side",
    ),
    path("<str:token>/trial/<str:trial_token>/feedback/", views.feedback, name="feedback"),
    path("<str:token>/done/", views.done, name="done"),
]
