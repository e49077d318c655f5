"""manage.py backup / restore round-trip a finished study: statistics identical after restore."""

from __future__ import annotations

import hashlib
import json
import tarfile
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from studies.backup import data_models
from studies.models import Response, Study
from studies.results import study_results
from tests.factories import UserFactory, cohort_from_fixture_tiles, open_study, second_arm
from tests.studies.test_results import answer

pytestmark = pytest.mark.django_db(transaction=True)


def files(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def wipe_database() -> None:
    call_command("flush", interactive=False, verbosity=0)


def finished_study(arms: bool = False) -> Study:
    readers = [UserFactory(username=f"reader{i}") for i in range(3)]
    cohort = cohort_from_fixture_tiles(per_stratum=4)
    more = (second_arm(cohort, "label-arm"),) if arms else ()
    study = open_study(cohort, readers, cases=8, arms=more)
    for i, reader in enumerate(readers):
        answer(study, reader, lambda kind, pos, i=i: (
            kind if (pos + i) % 3 else {"real": "synthetic", "synthetic": "real"}[kind],
            1 + (pos + i) % 5,
        ))  # fmt: skip
    study.image(study.cases.first().tile)  # presented images are on disk too
    return study


@pytest.mark.parametrize("arms", [False, True], ids=["one-cohort", "two-arms"])
def test_backup_then_restore_into_an_empty_database_gives_identical_statistics(
    tmp_path, isolated_storage, arms
):
    study = finished_study(arms)
    before = json.dumps(study_results(study).as_dict(), sort_keys=True, default=str)
    answers = sorted(Response.objects.values_list("reader__username", "case_id", "call",
                                                  "confidence", "answered_at"))  # fmt: skip
    media_before = files(isolated_storage)
    assert any(name.startswith("presented/") for name in media_before)
    out = StringIO()
    call_command("backup", str(tmp_path / "b1"), stdout=out)
    assert "Backup in" in out.getvalue()
    manifest = json.loads((tmp_path / "b1" / "manifest.json").read_text())
    assert manifest["rows"]["studies.Response"] == 24

    wipe_database()
    for path in sorted(isolated_storage.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    assert not Response.objects.exists()

    call_command("restore", str(tmp_path / "b1"), stdout=StringIO())
    restored = Study.objects.get(pk=study.pk)
    after = json.dumps(study_results(restored).as_dict(), sort_keys=True, default=str)
    assert after == before
    assert answers == sorted(Response.objects.values_list("reader__username", "case_id", "call",
                                                          "confidence", "answered_at"))  # fmt: skip
    assert files(isolated_storage) == media_before
    # the restored database goes on working: new rows get fresh ids (sequences reset)
    UserFactory(username="after-restore")


def test_restore_refuses_a_database_with_data_a_corrupt_backup_and_escaping_members(
    tmp_path, isolated_storage
):
    finished_study()
    call_command("backup", str(tmp_path / "b"), stdout=StringIO())
    with pytest.raises(CommandError, match="exists; pick a new folder"):
        call_command("backup", str(tmp_path / "b"), stdout=StringIO())
    with pytest.raises(CommandError, match="already holds data"):
        call_command("restore", str(tmp_path / "b"), stdout=StringIO())
    wipe_database()
    with pytest.raises(CommandError, match=r"no manifest\.json"):
        call_command("restore", str(tmp_path), stdout=StringIO())

    tampered = tmp_path / "tampered"
    call_command("backup", str(tmp_path / "empty"), stdout=StringIO())
    (tmp_path / "empty").rename(tampered)
    with (tampered / "db.xml.gz").open("ab") as handle:
        handle.write(b"x")
    with pytest.raises(CommandError, match=r"db.xml.gz: missing or its SHA-256 does not match"):
        call_command("restore", str(tampered), stdout=StringIO())

    # an archive member that would land outside MEDIA_ROOT refuses the whole restore
    evil = tmp_path / "evil"
    call_command("backup", str(tmp_path / "e"), stdout=StringIO())
    (tmp_path / "e").rename(evil)
    payload = tmp_path / "payload.txt"
    payload.write_text("outside")
    with tarfile.open(evil / "media.tar", "w") as tar:
        tar.add(payload, arcname="../escaped.txt")
    manifest = json.loads((evil / "manifest.json").read_text())
    manifest["sha256"]["media.tar"] = hashlib.sha256((evil / "media.tar").read_bytes()).hexdigest()
    (evil / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CommandError, match="not a plain file inside MEDIA_ROOT"):
        call_command("restore", str(evil), stdout=StringIO())
    assert not (isolated_storage.parent / "escaped.txt").exists()
    assert not any(m.objects.exists() for m in data_models())
