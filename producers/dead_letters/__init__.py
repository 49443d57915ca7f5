"""``python -m producers.dead_letters``: look at, replay or purge dead-lettered messages.

``letters`` tells what a dead letter is (pure), ``queue`` takes and gives back messages
of the dead queue, ``output`` shows them; ``__main__`` is the command.
"""
