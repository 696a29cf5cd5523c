"""The number of processes asked for, read from the launcher, against the number that runs."""

import pytest

from lets_hf.launch import parent_command_line, process_count_warning, requested_processes

ACCELERATE = ["/env/bin/python", "/env/bin/accelerate", "launch"]
MODULE = ["/env/bin/python", "-m", "accelerate.commands.launch"]


@pytest.mark.parametrize(
    "parent, requested",
    [
        (ACCELERATE + ["--num_processes", "2", "--cpu", "glue/run_glue.py", "--seed", "1"], 2),
        (MODULE + ["--cpu", "--num_processes=3", "vision/train.py"], 3),
        (ACCELERATE + ["--num-processes", "4", "run.py"], 4),
        (ACCELERATE + ["--cpu", "glue/run_glue.py", "--num_processes", "8"], None),  # the script's own argument
        (ACCELERATE + ["glue/run_glue.py"], None),  # the number, if any, is in accelerate's config file
        (["/usr/bin/bash", "-c", "python glue/run_glue.py --num_processes 2"], None),  # not accelerate
        ([], None),
    ],
)
def test_requested_processes_from_the_accelerate_command_line(parent, requested):
    assert requested_processes(environ={}, parent=parent) == requested


def test_world_size_set_by_a_launcher_wins():
    assert requested_processes(environ={"WORLD_SIZE": "2"}, parent=ACCELERATE + ["--num_processes", "4"]) == 2


def test_this_process_has_a_readable_parent():
    assert parent_command_line()  # pytest's parent: a shell or a launcher, on Linux


def test_the_warning_names_both_numbers_and_the_working_command():
    assert process_count_warning(2, 2) is None and process_count_warning(1, None) is None
    message = process_count_warning(1, 2)
    assert "2 processes were asked for, but 1 runs" in message
    assert "ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes 2 <script>" in message
