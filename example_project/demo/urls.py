from django.urls import path

from . import views

urlpatterns = [
    path("", views.index, name="index"),
    path("emit/<str:event>/", views.emit_task, name="emit"),
]
