"""macOS: VoiceOver announcements (NSAccessibility announcement requests, through pyobjc's AppKit).

VoiceOver speaks an announcement in the user's own voice and shows it in braille. It does not say when
an announcement ends, so sentences are paced at a brisk reading rate; a high-priority empty
announcement is the nearest thing to a stop that VoiceOver offers to other programs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from describe_screen.screenreader import Candidate, wait_while_spoken


def _load_appkit() -> Any:
    try:
        import AppKit
    except ImportError:
        return None
    return AppKit


def candidates(load: Callable[[], Any] = _load_appkit) -> list[Candidate]:
    appkit = load()
    if appkit is None:
        return []
    return [Candidate("VoiceOver", lambda: bool(appkit.NSWorkspace.sharedWorkspace().isVoiceOverEnabled()),
                      lambda: VoiceOver(appkit))]


class VoiceOver:
    name = "VoiceOver"

    def __init__(self, appkit: Any) -> None:
        self._appkit = appkit
        self._app = appkit.NSApplication.sharedApplication()

    def _announce(self, text: str) -> None:
        appkit = self._appkit
        appkit.NSAccessibilityPostNotificationWithUserInfo(
            self._app, appkit.NSAccessibilityAnnouncementRequestedNotification,
            {appkit.NSAccessibilityAnnouncementKey: text,
             appkit.NSAccessibilityPriorityKey: appkit.NSAccessibilityPriorityHigh})

    def speak(self, text: str, interrupted: Callable[[], bool]) -> bool:
        self._announce(text)
        return wait_while_spoken(text, interrupted, self.cancel)

    def cancel(self) -> None:
        self._announce("")

    def close(self) -> None:
        pass
