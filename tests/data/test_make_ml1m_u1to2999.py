"""experiments/scripts/make_ml1m_u1to2999.py: the users 1-2999 subset of RecBole's ml-1m, byte for byte."""

import importlib.util
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.path.abspath(os.path.join(REPO, "..", "shared", "data", "ml-1m-u1to2999"))
spec = importlib.util.spec_from_file_location("make_ml1m", os.path.join(REPO, "experiments", "scripts",
                                                                         "make_ml1m_u1to2999.py"))
make_ml1m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_ml1m)


def test_keeps_the_header_and_the_lines_of_users_up_to_the_last(tmp_path):
    src, dst = tmp_path / "a.inter", tmp_path / "b.inter"
    src.write_bytes(b"user_id:token\titem_id:token\n1\t10\n2999\t11\n3000\t12\n29990\t13\n12\t14\n")
    make_ml1m.users_up_to(str(src), str(dst), 2999)
    assert dst.read_bytes() == b"user_id:token\titem_id:token\n1\t10\n2999\t11\n12\t14\n"


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir(SHARED), reason=f"{SHARED} not present")
def test_rebuilds_the_shared_files_from_an_ml1m_folder(tmp_path):
    """An ml-1m folder as RecBole's download lays it out (the subset's lines, then users 3000-6040)
    gives back the files the results were computed on, with the sha256 the docs record."""
    ml1m = tmp_path / "ml-1m"
    ml1m.mkdir()
    name = "ml-1m-u1to2999"
    inter = open(os.path.join(SHARED, f"{name}.inter"), "rb").read()
    (ml1m / "ml-1m.inter").write_bytes(inter + b"3000\t1193\t4\t966000000\n6040\t1097\t4\t956715569\n")
    (ml1m / "ml-1m.item").write_bytes(open(os.path.join(SHARED, f"{name}.item"), "rb").read())
    user = open(os.path.join(SHARED, f"{name}.user"), "rb").read()
    (ml1m / "ml-1m.user").write_bytes(user + b"3000\t25\tM\t1\t55455\n6040\t25\tM\t6\t11106\n")
    assert make_ml1m.main([f"--data_path={tmp_path}"]) == 0
    for suffix in ("inter", "item", "user"):
        assert (tmp_path / name / f"{name}.{suffix}").read_bytes() == open(os.path.join(SHARED, f"{name}.{suffix}"),
                                                                             "rb").read()
