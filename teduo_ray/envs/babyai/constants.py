"""minigrid's encoding tables, mirrored so that text rendering and predicates run without
importing minigrid (a test checks they match minigrid's own)."""

from __future__ import annotations

OBJECT_TO_IDX: dict[str, int] = {
    "unseen": 0,
    "empty": 1,
    "wall": 2,
    "floor": 3,
    "door": 4,
    "key": 5,
    "ball": 6,
    "box": 7,
    "goal": 8,
    "lava": 9,
    "agent": 10,
    "obstacle": 11,  # teduo-ray: an object the state abstraction made irrelevant
}
IDX_TO_OBJECT: dict[int, str] = {v: k for k, v in OBJECT_TO_IDX.items()}

COLOR_NAMES: tuple[str, ...] = ("red", "green", "blue", "purple", "yellow", "grey")
COLOR_TO_IDX: dict[str, int] = {c: i for i, c in enumerate(COLOR_NAMES)}

NO_COLOR = 6  # teduo-ray: colour removed by the state abstraction

DOOR_STATES: tuple[str, ...] = ("open", "closed", "locked")
DOOR_STATE_MASK = 0b11

# Abstract states mark goal-relevant cells in bits 2-3 of the state channel (and the
# carried object in bits 4-5 of the carried colour); raw states have role 0 everywhere.
ROLE_NAMES: tuple[str, ...] = ("", "goal object", "goal location")
ROLE_SHIFT = 2
CARRY_ROLE_SHIFT = 4

# Facing direction 0..3 and its unit vector (x grows east, y grows south).
DIR_NAMES: tuple[str, ...] = ("east", "south", "west", "north")
DIR_TO_VEC: tuple[tuple[int, int], ...] = ((1, 0), (0, 1), (-1, 0), (0, -1))

PICKABLE: tuple[str, ...] = ("ball", "box", "key")

ACTION_NAMES: tuple[str, ...] = (
    "turn left",
    "turn right",
    "move forward",
    "pick up",
    "drop",
    "toggle",
    "done",
)
NUM_ACTIONS = len(ACTION_NAMES)
# Each action's counterpart in the left-right mirror image of the world (StateBatch.mirrored):
# turning left there is turning right here; the other actions do not depend on handedness.
MIRROR_ACTION: tuple[int, ...] = (1, 0, 2, 3, 4, 5, 6)
# Each facing direction's counterpart in that mirror image (x flips: east <-> west).
MIRROR_DIR: tuple[int, ...] = (2, 1, 0, 3)

# The BabyAI levels minigrid 3.2 registers (ids "BabyAI-<name>"), mirrored so that config
# validation names a typo without importing minigrid (a test checks the list against it).
BABYAI_LEVELS: frozenset[str] = frozenset(
    f"BabyAI-{name}"
    for name in (
        "ActionObjDoor-v0", "BlockedUnlockPickup-v0", "BossLevel-v0", "BossLevelNoUnlock-v0",
        "FindObjS5-v0", "FindObjS6-v0", "FindObjS7-v0", "GoTo-v0", "GoToDoor-v0", "GoToImpUnlock-v0",
        "GoToLocal-v0", "GoToLocalS5N2-v0", "GoToLocalS6N2-v0", "GoToLocalS6N3-v0", "GoToLocalS6N4-v0",
        "GoToLocalS7N4-v0", "GoToLocalS7N5-v0", "GoToLocalS8N2-v0", "GoToLocalS8N3-v0",
        "GoToLocalS8N4-v0", "GoToLocalS8N5-v0", "GoToLocalS8N6-v0", "GoToLocalS8N7-v0", "GoToObj-v0",
        "GoToObjDoor-v0", "GoToObjMaze-v0", "GoToObjMazeOpen-v0", "GoToObjMazeS4-v0",
        "GoToObjMazeS4R2-v0", "GoToObjMazeS5-v0", "GoToObjMazeS6-v0", "GoToObjMazeS7-v0",
        "GoToObjS4-v0", "GoToObjS6-v1", "GoToOpen-v0", "GoToRedBall-v0", "GoToRedBallGrey-v0",
        "GoToRedBallNoDists-v0", "GoToRedBlueBall-v0", "GoToSeq-v0", "GoToSeqS5R2-v0",
        "KeyCorridor-v0", "KeyCorridorS3R1-v0", "KeyCorridorS3R2-v0", "KeyCorridorS3R3-v0",
        "KeyCorridorS4R3-v0", "KeyCorridorS5R3-v0", "KeyCorridorS6R3-v0", "KeyInBox-v0",
        "MiniBossLevel-v0", "MoveTwoAcrossS5N2-v0", "MoveTwoAcrossS8N9-v0", "OneRoomS12-v0",
        "OneRoomS16-v0", "OneRoomS20-v0", "OneRoomS8-v0", "Open-v0", "OpenDoor-v0", "OpenDoorColor-v0",
        "OpenDoorDebug-v0", "OpenDoorLoc-v0", "OpenDoorsOrderN2-v0", "OpenDoorsOrderN2Debug-v0",
        "OpenDoorsOrderN4-v0", "OpenDoorsOrderN4Debug-v0", "OpenRedBlueDoors-v0",
        "OpenRedBlueDoorsDebug-v0", "OpenRedDoor-v0", "OpenTwoDoors-v0", "Pickup-v0", "PickupAbove-v0",
        "PickupDist-v0", "PickupDistDebug-v0", "PickupLoc-v0", "PutNextLocal-v0",
        "PutNextLocalS5N3-v0", "PutNextLocalS6N4-v0", "PutNextS4N1-v0", "PutNextS5N1-v0",
        "PutNextS5N2-v0", "PutNextS5N2Carrying-v0", "PutNextS6N3-v0", "PutNextS6N3Carrying-v0",
        "PutNextS7N4-v0", "PutNextS7N4Carrying-v0", "Synth-v0", "SynthLoc-v0", "SynthS5R2-v0",
        "SynthSeq-v0", "UnblockPickup-v0", "Unlock-v0", "UnlockLocal-v0", "UnlockLocalDist-v0",
        "UnlockPickup-v0", "UnlockPickupDist-v0", "UnlockToUnlock-v0",
    )
)
