"""CAP tests: the desk's tip types, real or stand-in (``tests.cap.standin``)."""

from tests.cap.standin import install_tips_module

install_tips_module()
