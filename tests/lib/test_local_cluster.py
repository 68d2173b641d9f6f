

def test_ray_gets_a_temp_dir_short_enough_for_its_sockets(tmp_path):
    """Ray's dashboard makes <temp>/session_2026-12-06_08-45-27_728458_31366/sockets/dash_MetricsHead: a socket path
    over 107 bytes and the head dies while starting (seen with WARMTH_HOME under a deep folder)."""
    from warmth_assets.lib.local_cluster import ray_temp_dir

    session_socket = "/session_2026-12-06_08-45-27_728458_31366/sockets/dash_MetricsHead"
    short = tmp_path / "c"
    short.mkdir()
    if len(str(short / "ray")) + len(session_socket) <= 107:
        assert ray_temp_dir(short) == short / "ray"  # a short home keeps Ray's files in it
    deep = tmp_path / ("a-long-folder-name-" * 4) / "cluster"
    deep.mkdir(parents=True)
    chosen = ray_temp_dir(deep)
    assert len(str(chosen)) + len(session_socket) <= 107
    assert (deep / "ray").resolve() == chosen.resolve()  # the logs are still found under WARMTH_HOME
    assert ray_temp_dir(deep) == chosen  # the same folder on the next `up`
