"""Stream identity: a structured key, one text form, one resolver."""

from __future__ import annotations

import pytest

from devices.stream import StreamKey, StreamKind, StreamResolver, StreamSpec


def spec(name: str, kind: StreamKind = StreamKind.PRESSURE) -> StreamSpec:
    return StreamSpec(name, kind, ("ch",), "u", 50.0)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("pressure", StreamKey("pressure")),
        ("kgoal.pressure", StreamKey("pressure", "kgoal")),
        ("Boost/kgoal.pressure", StreamKey("pressure", "kgoal", "Boost")),
        ("GDX-RB 0K2001A7/gdx-rb.force", StreamKey("force", "gdx-rb", "GDX-RB 0K2001A7")),
        ("lsl.breath_force", StreamKey("breath_force", "lsl")),
        ("probe/pressure", StreamKey("pressure", None, "probe")),
    ],
)
def test_the_key_and_its_text_form_round_trip(text: str, key: StreamKey) -> None:
    assert StreamKey.parse(text) == key and key.id == text
    assert spec(text).key == key


def test_chunks_find_their_spec_whatever_the_source_named_them() -> None:
    r = StreamResolver([spec("Boost/kgoal.pressure"),
                        spec("GDX-RB/gdx-rb.force", StreamKind.BREATH_FORCE)])
    assert r.name("Boost/kgoal.pressure") == "Boost/kgoal.pressure"
    assert r.name("kgoal.pressure") == "Boost/kgoal.pressure"
    assert r.name("force") == "GDX-RB/gdx-rb.force"
    assert r.name("Other/kgoal.pressure") is None  # another device's probe
    assert r.name("perifit.pressure") is None  # another driver's
    assert r.streams_of("Boost") == {"Boost/kgoal.pressure"}
    assert r.streams_of("nobody") == set()


def test_a_device_is_known_from_its_chunks_when_the_specs_do_not_name_it() -> None:
    r = StreamResolver([spec("pressure"), spec("force", StreamKind.BREATH_FORCE)])
    assert r.streams_of("any") == {"pressure", "force"}  # one source: all its streams
    assert r.name("belt/force") == "force"
    assert r.streams_of("belt") == {"force"}
    assert r.streams_of("kgoal") == set()  # several devices now, not this one
    r.add(spec("extra"))
    assert r.name("extra") == "extra"
