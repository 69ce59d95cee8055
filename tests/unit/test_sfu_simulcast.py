"""Simulcast layer metering, subscriber bandwidth and layer selection (sfu/simulcast.py).

Time is a plain float passed in, so hysteresis is tested on a fake clock, to the tick.
"""

from __future__ import annotations

import pytest

from streamhive.sfu.simulcast import BandwidthEstimate, LayerMeter, LayerSelector

HEIGHTS: list[int | None] = [180, 360, 720]
BITRATES = [150_000, 500_000, 1_500_000]
ALL = [True, True, True]


def test_meter_slides_over_one_second() -> None:
    meter = LayerMeter()
    assert meter.bitrate(0.0) == 0 and not meter.active(0.0)
    for i in range(1, 201):  # 100 packets of 1000 bytes a second, for two seconds
        meter.packet(1000, i / 100)
    assert meter.bitrate(2.0) == 800_000
    assert meter.active(2.0)
    assert meter.bitrate(2.5) == 400_000
    assert meter.active(2.99)
    assert not meter.active(3.0)
    assert meter.bitrate(3.0) == 0
    meter.packet(125, 10.0)
    assert meter.bitrate(10.0) == 1000 and meter.active(10.0)


def test_bandwidth_follows_remb_and_expires() -> None:
    estimate = BandwidthEstimate()
    assert estimate.value(0.0) is None
    estimate.loss(0.5, 0.0)  # loss alone has nothing to scale
    assert estimate.value(0.0) is None
    estimate.remb(1_000_000, 1.0)
    assert estimate.value(1.0) == 1_000_000
    estimate.remb(700_000, 2.0)
    assert estimate.value(6.9) == 700_000
    assert estimate.value(7.1) is None  # no feedback for 5 s
    estimate.loss(0.0, 8.0)  # any feedback revives it
    assert estimate.value(8.0) == 700_000


def test_heavy_loss_cuts_and_low_loss_lets_it_grow_back() -> None:
    estimate = BandwidthEstimate()
    estimate.remb(1_000_000, 0.0)
    estimate.loss(0.2, 1.0)
    assert estimate.value(1.0) == 900_000  # x (1 - 0.5 * 0.2)
    estimate.loss(0.5, 2.0)
    assert estimate.value(2.0) == 675_000
    estimate.loss(0.05, 3.0)  # between 2 % and 10 %: hold
    assert estimate.value(3.0) == 675_000
    estimate.remb(1_000_000, 3.5)  # the delay-based estimate does not lift the loss cap
    assert estimate.value(3.5) == 675_000
    estimate.loss(0.01, 4.0)
    assert estimate.value(4.0) == round(675_000 * 1.05)
    for t in range(5, 15):
        estimate.loss(0.0, t)
    assert estimate.value(15.0) == 1_000_000  # grown back to the REMB, and the cap is gone
    estimate.remb(2_000_000, 16.0)
    assert estimate.value(16.0) == 2_000_000
    estimate.remb(300_000, 17.0)
    estimate.loss(0.3, 17.5)
    assert estimate.value(17.5) == 255_000  # a cut starts from the lower of cap and REMB


def test_first_choice_is_immediate_and_down_is_at_once() -> None:
    selector = LayerSelector()
    assert selector.target is None and not selector.wants_keyframe
    assert selector.choose(HEIGHTS, BITRATES, ALL, None, None, 0.0) == 2
    assert selector.wants_keyframe
    assert selector.choose(HEIGHTS, BITRATES, ALL, 360, None, 0.1) == 1
    assert selector.choose(HEIGHTS, BITRATES, ALL, 360, 600_000, 0.2) == 1  # 500k <= 85% of 600k
    assert (
        selector.choose(HEIGHTS, BITRATES, ALL, 360, 580_000, 0.3) == 1
    )  # the current layer stays while 75% fits
    assert selector.choose(HEIGHTS, BITRATES, ALL, 360, 360_000, 0.35) == 0  # 375k > 360k: down at once
    assert selector.choose(HEIGHTS, BITRATES, ALL, 100, None, 0.4) == 0  # too small: the lowest
    assert selector.choose(HEIGHTS, BITRATES, ALL, None, 10_000, 0.5) == 0


def test_up_waits_for_two_seconds_of_fitting() -> None:
    selector = LayerSelector()
    selector.choose(HEIGHTS, BITRATES, ALL, 180, None, 0.0)
    assert selector.choose(HEIGHTS, BITRATES, ALL, 720, None, 10.0) == 0
    assert selector.choose(HEIGHTS, BITRATES, ALL, 720, None, 11.0) == 0
    # Bandwidth dips at 11.5: layer 2 stopped fitting, its 2 s start again; layer 1 still fits.
    assert selector.choose(HEIGHTS, BITRATES, ALL, 720, 1_000_000, 11.5) == 0
    assert selector.choose(HEIGHTS, BITRATES, ALL, 720, None, 11.9) == 0
    assert selector.choose(HEIGHTS, BITRATES, ALL, 720, None, 12.0) == 1  # layer 1 fit since 10.0
    assert selector.choose(HEIGHTS, BITRATES, ALL, 720, None, 13.8) == 1
    assert selector.choose(HEIGHTS, BITRATES, ALL, 720, None, 13.9) == 2  # layer 2 fit since 11.9


def test_inactive_layers() -> None:
    selector = LayerSelector()
    assert selector.choose(HEIGHTS, BITRATES, [False, True, True], 180, None, 0.0) == 1  # lowest live
    assert selector.choose(HEIGHTS, BITRATES, [True, False, True], 720, None, 1.0) == 2  # at once
    assert selector.choose(HEIGHTS, BITRATES, [True, False, False], 720, None, 1.1) == 0
    assert selector.choose(HEIGHTS, BITRATES, [False, False, False], 720, None, 1.2) == 0  # stays
    assert LayerSelector().choose(HEIGHTS, BITRATES, [False] * 3, None, None, 0.0) == 0


@pytest.mark.parametrize(
    ("heights", "max_height", "layer"),
    [
        ([None, None, 720], 360, 1),  # 180, 360, 720 assumed
        ([None, None, 720], 200, 0),
        ([None, 360, None], 700, 1),  # the top one taken for 720
        ([None, 360, None], 720, 2),
        ([None, None, None], 100, 2),  # nothing known: the size limit cannot apply
    ],
)
def test_unknown_heights(heights: list[int | None], max_height: int, layer: int) -> None:
    assert LayerSelector().choose(heights, BITRATES, ALL, max_height, None, 0.0) == layer


def test_switches_happen_at_keyframes_of_the_target() -> None:
    selector = LayerSelector()
    assert not selector.accept(0, True)  # nothing chosen yet
    selector.choose(HEIGHTS, BITRATES, ALL, None, None, 0.0)
    assert not selector.accept(2, False)  # the target, but not where a decoder can start
    assert not selector.accept(1, True)  # a keyframe, of another layer
    assert selector.accept(2, True)
    assert (selector.current, selector.wants_keyframe) == (2, False)
    assert selector.accept(2, False)

    selector.choose(HEIGHTS, BITRATES, ALL, 180, None, 1.0)
    assert selector.wants_keyframe
    assert selector.accept(2, False)  # the old layer flows until the new one can start
    assert not selector.accept(0, False)
    assert selector.accept(0, True)
    assert not selector.accept(2, False)
    assert selector.accept(0, False)
    assert not selector.wants_keyframe


def test_an_estimate_that_tracks_the_received_rate_keeps_the_layer_and_probes_up() -> None:
    """Browsers' REMB follows what they receive: 769k for a 745k layer is "fine", and an
    estimate well above the current rate lets the next layer be tried (the switch is the probe)."""
    selector = LayerSelector()
    rates = [280_000, 745_000, 1_500_000]
    assert selector.choose(HEIGHTS, rates, ALL, None, 1_000_000, 0.0) == 1
    for step in range(1, 40):
        assert selector.choose(HEIGHTS, rates, ALL, None, 769_104, step * 0.5) == 1  # never gives up 1
    start = 20.0
    assert selector.choose(HEIGHTS, rates, ALL, None, 1_000_000, start) == 1  # 1.34x the rate
    assert selector.choose(HEIGHTS, rates, ALL, None, 1_000_000, start + 2.0) == 2  # held 2 s: try 2


def test_a_failed_try_up_doubles_the_wait() -> None:
    selector = LayerSelector()
    rates = [280_000, 745_000, 1_500_000]
    selector.choose(HEIGHTS, rates, ALL, None, 1_000_000, 0.0)  # layer 1
    selector.choose(HEIGHTS, rates, ALL, None, 1_000_000, 0.5)  # layer 2 starts to fit (a probe)
    assert selector.choose(HEIGHTS, rates, ALL, None, 1_000_000, 2.5) == 2
    assert selector.choose(HEIGHTS, rates, ALL, None, 1_000_000, 3.0) == 1  # 1.5M needs 1.125M: down
    selector.choose(HEIGHTS, rates, ALL, None, 1_000_000, 3.5)
    assert selector.choose(HEIGHTS, rates, ALL, None, 1_000_000, 5.6) == 1  # 2 s is not enough now
    assert selector.choose(HEIGHTS, rates, ALL, None, 1_000_000, 7.6) == 2  # 4 s is
