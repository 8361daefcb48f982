"""Each limit in its one place, over real HTTP against the simulator: bytes, redirects and pages in
the client's exchange, records in the record reader, the deadline between pieces of a body, the
ETag cache, JSON depth, secret files and the config keys. The whole path (exporter, refresher,
/metrics) is covered by the attacks in test_reliability.py."""

from __future__ import annotations

import gzip
import json
import os
import threading
import time
import tracemalloc
import zlib

import pytest

from conftest import TOKEN
from copilot_exporter.config import parse_config
from copilot_exporter.errors import ConfigError, PayloadError
from copilot_exporter.github.auth import CredentialsError, TokenFile
from copilot_exporter.github.client import (
    Connection,
    Timeout,
    TooLarge,
    TooManyPages,
    TooManyRedirects,
    decode_json,
)
from copilot_exporter.github import client as client_module
from copilot_exporter.github.records import iter_records
from copilot_exporter.limits import MiB, Limits, parse_size
from copilot_exporter.secret_file import MAX_SECRET_BYTES, read_secret_file
from copilot_exporter.simulator import Fault, Simulator, World
from copilot_exporter.telemetry import Telemetry

pytestmark = pytest.mark.integration


LEGACY = "/orgs/acme/copilot/metrics"
SEATS = "/orgs/acme/copilot/billing/seats"
DOWNLOAD = "/reports/org/acme/attack"


def connect(sim, **limits) -> Connection:
    return Connection(
        sim.api_url,
        lambda: TOKEN,
        Telemetry(),
        connect_timeout=5,
        read_timeout=5,
        max_retries=0,
        limits=Limits(**limits),
    )


def peak_allocated(action) -> int:
    """The most memory Python allocated at once while `action` ran, in bytes."""
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# -- bytes ---------------------------------------------------------------------------------------


def test_a_content_encoding_bomb_on_an_api_answer_stops_at_max_response_bytes(simulator):
    simulator.add_fault(LEGACY, Fault(kind="bomb", size=3_000_000_000, headers={"Content-Encoding": "gzip"}))
    client = connect(simulator, max_response_bytes=4 * MiB).client()

    def get():
        with pytest.raises(TooLarge, match="max_response_bytes"):
            client.get(LEGACY, LEGACY)

    assert peak_allocated(get) < 20 * MiB


@pytest.mark.parametrize("encoded", [False, True], ids=["gzip-file", "content-encoding"])
def test_a_report_bomb_stops_at_max_report_bytes_in_bounded_memory(simulator, encoded):
    headers = {"Content-Encoding": "gzip"} if encoded else {}
    record = b'{"user_login": "' + b"x" * 1000 + b'"}\n'  # valid records, each one small
    simulator.add_fault(
        DOWNLOAD, Fault(kind="bomb", size=3_000_000_000, fill=record, headers=headers), server="download"
    )
    client = connect(simulator, max_report_bytes=8 * MiB).client()

    def read():
        body = client.download(simulator.download_url + DOWNLOAD, "download")
        try:
            with pytest.raises(TooLarge, match="max_report_bytes"):
                for _ in iter_records(body, "attack"):
                    pass
        finally:
            body.close()

    assert peak_allocated(read) < 20 * MiB


def test_blank_space_before_the_first_record_is_bounded_by_max_record_bytes(simulator):
    simulator.add_fault(DOWNLOAD, Fault(kind="bomb", size=3_000_000_000, fill=b" "), server="download")
    body = connect(simulator, max_record_bytes=1 * MiB).client().download(simulator.download_url + DOWNLOAD, "d")
    with pytest.raises(TooLarge, match="blank space.*max_record_bytes"):
        list(iter_records(body, "attack"))
    body.close()


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": "' + b"x" * (3 * MiB),
        b'{"a": 1}\n{"b": "' + b"x" * (3 * MiB) + b'"}\n',
        b'[{"a": "' + b"x" * (3 * MiB) + b'"}]',
    ],
    ids=["unended", "second-line", "array"],
)
def test_a_record_longer_than_max_record_bytes_is_too_large(simulator, body):
    simulator.add_fault(DOWNLOAD, Fault(status=200, body=body), server="download")
    response = connect(simulator, max_record_bytes=1 * MiB).client().download(simulator.download_url + DOWNLOAD, "d")
    with pytest.raises(TooLarge, match="max_record_bytes"):
        list(iter_records(response, "attack"))
    response.close()


@pytest.mark.parametrize("compress", [zlib.compress, lambda data: zlib.compress(data)[2:-4]], ids=["zlib", "raw"])
def test_deflate_is_read_whether_zlib_wrapped_or_raw(simulator, compress):
    days = [{"date": "2026-01-01", "total_active_users": 3}]
    simulator.add_fault(
        LEGACY, Fault(status=200, body=compress(json.dumps(days).encode()), headers={"Content-Encoding": "deflate"})
    )
    assert connect(simulator).client().get(LEGACY, LEGACY).json(LEGACY) == days


def test_a_body_in_an_encoding_not_asked_for_is_a_payload_error(simulator):
    simulator.add_fault(LEGACY, Fault(status=200, body=b"\x00\x01", headers={"Content-Encoding": "br"}))
    with pytest.raises(PayloadError, match="unsupported Content-Encoding"):
        connect(simulator).client().get(LEGACY, LEGACY)
    assert simulator.requests[-1].headers["Accept-Encoding"] == "gzip, deflate"


def test_a_chain_of_content_encodings_longer_than_five_is_a_payload_error(simulator):
    body = json.dumps([{"date": "2026-01-01"}]).encode()
    for _layer in range(6):
        body = gzip.compress(body)
    simulator.add_fault(LEGACY, Fault(status=200, body=body, headers={"Content-Encoding": ", ".join(["gzip"] * 6)}))
    with pytest.raises(PayloadError, match="6 Content-Encodings, at most 5"):
        connect(simulator).client().get(LEGACY, LEGACY)


def test_a_link_header_after_a_run_of_angle_brackets_gives_the_next_link():
    """A link target holds no `<`: the pattern that allowed it matched from the first `<` of a
    run (and backtracked over the run, seconds for a 65 kB header, holding the interpreter)."""
    header = "<" * 2_000 + '<https://api.github.com/x?page=2>; rel="next"'
    assert client_module._next_link(header, "https://api.github.com/x") == "https://api.github.com/x?page=2"


def test_several_gzip_members_with_content_encoding_are_one_body(simulator):
    days = [{"date": f"2026-01-{day:02}"} for day in range(1, 29)]
    text = json.dumps(days).encode()
    simulator.add_fault(
        LEGACY,
        Fault(
            status=200, body=gzip.compress(text[:100]) + gzip.compress(text[100:]), headers={"Content-Encoding": "gzip"}
        ),
    )
    assert connect(simulator).client().get(LEGACY, LEGACY).json(LEGACY) == days


# -- time ----------------------------------------------------------------------------------------


def test_a_body_sent_a_byte_at_a_time_ends_at_the_deadline(simulator):
    # Each byte comes well within the read timeout, so only the deadline can end the request.
    simulator.add_fault(LEGACY, Fault(kind="drip", interval=0.2, body=b"[" + b" " * 10_000 + b"]"))
    client = connect(simulator).client(timeout=2.0)
    started = time.monotonic()
    with pytest.raises(Timeout, match="deadline"):
        client.get(LEGACY, LEGACY)
    assert time.monotonic() - started < 30  # without a deadline: 10,000 bytes at 5 a second


def test_a_download_sent_a_byte_at_a_time_ends_at_the_deadline(simulator):
    simulator.add_fault(DOWNLOAD, Fault(kind="drip", interval=0.2, body=b'{"a": 1}\n' * 1000), server="download")
    body = connect(simulator).client(timeout=2.0).download(simulator.download_url + DOWNLOAD, "d")
    started = time.monotonic()
    with pytest.raises(Timeout, match="deadline"):
        list(iter_records(body, "attack"))
    body.close()
    assert time.monotonic() - started < 30


def test_no_rate_limit_wait_lasts_past_the_deadline(simulator):
    from requests.structures import CaseInsensitiveDict

    from copilot_exporter.github.client import RateLimited

    connection = connect(simulator)
    connection.max_rate_limit_wait = 600.0
    connection.note_rate_limit(
        CaseInsensitiveDict({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(time.time()) + 60)})
    )
    started = time.monotonic()
    with pytest.raises(RateLimited, match="refresh_timeout"):
        connection.client(timeout=5.0).get(LEGACY, LEGACY)
    assert time.monotonic() - started < 30 and simulator.request_count() == 0


def test_no_request_starts_after_the_deadline(simulator):
    client = connect(simulator).client(timeout=0.0)
    with pytest.raises(Timeout):
        client.get(LEGACY, LEGACY)
    assert simulator.request_count() == 0


# -- redirects and pages -------------------------------------------------------------------------


def test_an_api_redirect_loop_ends_after_max_redirects(simulator):
    simulator.add_fault(LEGACY, Fault(status=302, body=b"", headers={"Location": LEGACY}))
    with pytest.raises(TooManyRedirects, match="max_redirects"):
        connect(simulator, max_redirects=4).client().get(LEGACY, LEGACY)
    assert simulator.request_count(LEGACY) == 5  # the request and 4 redirects


def test_a_redirect_hop_to_another_host_gets_no_token(simulator):
    # One hop on the API host first: the token rule is checked on every hop, not just the first.
    simulator.add_fault("/hop", Fault(status=302, body=b"", headers={"Location": simulator.download_url + DOWNLOAD}))
    simulator.add_fault(LEGACY, Fault(status=307, body=b"", headers={"Location": "/hop"}))
    with pytest.raises(PayloadError, match="refusing to send credentials"):
        connect(simulator).client().get(LEGACY, LEGACY)
    assert simulator.request_count(server="download") == 0


def test_a_download_redirect_loop_ends_after_max_redirects(simulator):
    simulator.add_fault(
        DOWNLOAD, Fault(status=302, body=b"", headers={"Location": DOWNLOAD + "?again"}), server="download"
    )
    with pytest.raises(TooManyRedirects):
        connect(simulator, max_redirects=3).client().download(simulator.download_url + DOWNLOAD, "d")
    assert simulator.request_count(DOWNLOAD, server="download") == 4


def test_a_download_redirect_is_followed_without_credentials(simulator):
    links = simulator_links(simulator)
    simulator.add_fault(DOWNLOAD, Fault(status=302, body=b"", headers={"Location": links[0]}), server="download")
    body = connect(simulator).client().download(simulator.download_url + DOWNLOAD, "d")
    assert list(iter_records(body, "redirected"))
    body.close()
    assert simulator.download_auth_violations == 0


def simulator_links(sim) -> list[str]:
    import datetime as dt

    day = (sim.world.today - dt.timedelta(days=2)).isoformat()
    answer = connect(sim).client().get("/orgs/acme/copilot/metrics/reports/users-1-day", "r", {"day": day})
    return answer.json("r")["download_links"]


def test_a_link_header_back_to_a_page_already_read_ends_the_listing(simulator):
    simulator.add_fault(SEATS, Fault(status=200, headers={"Link": f'<{SEATS}?per_page=100&page=1>; rel="next"'}))
    with pytest.raises(PayloadError, match="already read"):
        list(connect(simulator).client().get_pages(SEATS, SEATS, {"per_page": 100}))
    assert simulator.request_count(SEATS) == 2


def test_a_page_listing_more_than_asked_for_is_refused(simulator):
    """Records are bounded by max_pages x per_page: a page of 101 seats when 100 were asked is not
    taken (a 16 MiB page of `{}` would be millions)."""
    body = json.dumps({"total_seats": 101, "seats": [{} for _ in range(101)]}).encode()
    simulator.add_fault(SEATS, Fault(status=200, body=body))
    pages = connect(simulator).client().get_pages(SEATS, SEATS, {"per_page": 100}, items=lambda page: page["seats"])
    with pytest.raises(PayloadError, match="101 items on a page, 100 asked for"):
        list(pages)


def test_a_listing_longer_than_max_pages_is_refused():
    with Simulator(world=World.default(), token=TOKEN, max_per_page=1) as sim:
        pages = connect(sim, max_pages=3).client().get_pages(SEATS, SEATS, {"per_page": 1})
        with pytest.raises(TooManyPages, match="max_pages"):
            list(pages)
        assert sim.request_count(SEATS) == 3


# -- the ETag cache ------------------------------------------------------------------------------


def test_the_etag_cache_drops_its_oldest_entries_past_its_bounds():
    connection = Connection(
        "http://api.invalid", lambda: "t", Telemetry(), limits=Limits(max_etag_entries=3, max_etag_bytes=1000)
    )
    for day in range(5):
        connection.remember_etag(f"/day/{day}", f'"{day}"', b"x" * 100)
    assert [connection.etag_for(f"/day/{day}") is not None for day in range(5)] == [False, False, True, True, True]
    connection.remember_etag("/big", '"big"', b"x" * 900)  # 1,200 bytes with the three newest
    assert connection.etag_for("/big") and connection.etag_for("/day/4")
    assert connection.etag_for("/day/2") is None and connection.etag_for("/day/3") is None
    connection.remember_etag("/huge", '"huge"', b"x" * 1001)  # larger than the whole cache
    assert connection.etag_for("/huge") is None and connection.etag_for("/big")


# -- JSON ----------------------------------------------------------------------------------------


def test_json_nested_deeper_than_the_decoder_goes_is_a_payload_error(simulator):
    with pytest.raises(PayloadError, match="nested too deeply"):
        decode_json(b"[" * 200_000, "where", "body")
    simulator.add_fault(LEGACY, Fault(status=200, body=b"[" * 200_000))
    with pytest.raises(PayloadError):
        connect(simulator).client().get(LEGACY, LEGACY).json(LEGACY)


@pytest.mark.parametrize("body", [b'{"a": ' + b"[" * 200_000 + b"\n", b"[" + b"[" * 200_000], ids=["ndjson", "array"])
def test_a_report_record_nested_too_deeply_is_a_payload_error(simulator, body):
    simulator.add_fault(DOWNLOAD, Fault(status=200, body=body), server="download")
    response = connect(simulator).client().download(simulator.download_url + DOWNLOAD, "d")
    with pytest.raises(PayloadError, match="nested too deeply"):
        list(iter_records(response, "attack"))
    response.close()


# -- secret files --------------------------------------------------------------------------------


def within(seconds: float, action):
    """The result of `action`, which must not block: run in a thread, given `seconds` at most."""
    result: list = []
    thread = threading.Thread(target=lambda: result.append(_outcome(action)), daemon=True)
    thread.start()
    thread.join(seconds)
    assert result, f"still blocked after {seconds}s"
    return result[0]


def _outcome(action):
    try:
        return action()
    except Exception as err:  # noqa: BLE001 - handed to the test
        return err


def test_a_fifo_a_device_or_a_huge_file_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    huge = tmp_path / "huge"
    huge.write_bytes(b"t" * (MAX_SECRET_BYTES + 1))
    assert str(within(10, lambda: read_secret_file(str(fifo)))) == f"cannot read {fifo}: not a regular file (a FIFO)"
    assert str(within(10, lambda: read_secret_file("/dev/zero"))) == (
        "cannot read /dev/zero: not a regular file (a character device)"
    )
    assert str(within(10, lambda: read_secret_file(str(huge)))) == (
        f"cannot read {huge}: larger than {MAX_SECRET_BYTES} bytes, too large for a secret"
    )


@pytest.mark.parametrize("kind", ["fifo", "device", "huge"])
def test_config_check_refuses_such_a_token_file(tmp_path, kind):
    path = {"fifo": str(tmp_path / "fifo"), "device": "/dev/zero", "huge": str(tmp_path / "huge")}[kind]
    if kind == "fifo":
        os.mkfifo(path)
    if kind == "huge":
        (tmp_path / "huge").write_bytes(b"t" * (MAX_SECRET_BYTES + 1))
    data = {"github": {"token_file": path}, "organizations": [{"name": "acme"}]}
    error = within(10, lambda: parse_config(data, {}))
    assert isinstance(error, ConfigError)
    assert error.problems[0].startswith(f"github.token_file: cannot read {path}: ")


def test_a_token_file_deleted_or_replaced_by_a_fifo_is_a_credentials_error(tmp_path):
    path = tmp_path / "token"
    path.write_text("ghp_abc\n")
    token = TokenFile(str(path))
    assert token() == "ghp_abc"
    path.unlink()
    with pytest.raises(CredentialsError, match="No such file"):
        token()
    os.mkfifo(path)
    error = within(10, token)
    assert isinstance(error, CredentialsError) and error.reason == "credentials"


def test_an_app_private_key_file_that_is_a_fifo_is_refused_without_blocking(tmp_path):
    from copilot_exporter.config import AppAuth
    from copilot_exporter.github.app import AppKeyError, AppTokens

    key = tmp_path / "app.pem"
    os.mkfifo(key)
    tokens = AppTokens(AppAuth("1", str(key), 5), "http://api.invalid")
    error = within(10, tokens._jwt)
    assert isinstance(error, AppKeyError) and str(error).endswith("not a regular file (a FIFO)")


# -- config --------------------------------------------------------------------------------------


def limits_of(**keys):
    return parse_config({"github": {"token": "t"}, "organizations": [{"name": "acme"}], **keys}, {}).limits


def test_limits_have_defaults_and_config_keys():
    assert limits_of() == Limits()
    assert limits_of(
        refresh_timeout="30s",
        max_report_bytes="2GiB",
        max_record_bytes="1MiB",
        max_response_bytes=4_000_000,
        max_redirects=3,
        max_pages=50,
        max_etag_entries=10,
        max_etag_bytes="1MB",
    ) == Limits(
        refresh_timeout=30.0,
        max_report_bytes=2 * 1024**3,
        max_record_bytes=MiB,
        max_response_bytes=4_000_000,
        max_redirects=3,
        max_pages=50,
        max_etag_entries=10,
        max_etag_bytes=1_000_000,
    )


@pytest.mark.parametrize(
    ("keys", "problem"),
    [
        (
            {"max_report_bytes": "lots"},
            "max_report_bytes: 'lots' is not a size (use e.g. 16MiB, 8GiB or a number of bytes)",
        ),
        ({"max_record_bytes": 10}, "max_record_bytes: must be at least 1024 bytes, got 10"),
        (
            {"max_response_bytes": True},
            "max_response_bytes: must be a size like 16MiB or a number of bytes, got boolean",
        ),
        ({"refresh_timeout": "0s"}, 'refresh_timeout: must be at least 1s, got "0s"'),
        ({"max_redirects": 1000}, "max_redirects: must be between 0 and 100, got 1000"),
        ({"max_pages": 0}, "max_pages: must be at least 1, got 0"),
    ],
)
def test_limit_config_problems(keys, problem):
    with pytest.raises(ConfigError) as caught:
        limits_of(**keys)
    assert caught.value.problems == [problem]


def test_sizes():
    assert [parse_size(v) for v in (5, "5", "5B", "2KB", "2KiB", "3MB", "3MiB", "1GB", "1GiB")] == [
        5,
        5,
        5,
        2000,
        2048,
        3_000_000,
        3 * MiB,
        10**9,
        1024**3,
    ]


def test_the_example_file_states_every_limit_at_its_default():
    from pathlib import Path

    from copilot_exporter.config import load_config

    example = Path(__file__).resolve().parent.parent / "config.example.yaml"
    text = example.read_text()
    assert all(f"\n{key}: " in text for key in Limits.__dataclass_fields__)  # each one set, with its comment
    assert load_config(example, {"GITHUB_TOKEN": "x"}).limits == Limits()
