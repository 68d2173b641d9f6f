"""File and folder digests, pinned against `sha256sum` and FIPS 180-2's test vector, not against hashlib itself."""

from warmth_assets.lib.hashing import BLOCK, file_sha256, folder_size_and_sha256


def test_file_sha256_is_the_sha256sum_of_the_bytes(tmp_path):
    (tmp_path / "abc").write_bytes(b"abc")
    (tmp_path / "empty").write_bytes(b"")
    assert file_sha256(tmp_path / "abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert file_sha256(str(tmp_path / "empty")) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_a_file_of_several_blocks_hashes_as_one(tmp_path):
    # 3 blocks and 5 bytes over (12,583,168 bytes); the digest is what `sha256sum` printed for this file.
    path = tmp_path / "big.bin"
    path.write_bytes(bytes(range(256)) * ((3 * BLOCK + 5) // 256 + 1))
    assert path.stat().st_size > 3 * BLOCK
    assert file_sha256(path) == "d3a55fa6718489cd7953ad52b97893f3b325cfd4cef10e6e2c617e4805229bb7"


def test_folder_digest_covers_names_and_bytes(tmp_path):
    # Pinned: an adapter's sha256 is part of the in-process cache keys, so a different digest for the same folder
    # would re-run every cached call of every adapter.
    folder = tmp_path / "adapter"
    (folder / "sub").mkdir(parents=True)
    (folder / "adapter_config.json").write_text("warm\n")
    (folder / "sub" / "model.bin").write_bytes(b"weights")
    (folder / "empty").write_bytes(b"")
    assert folder_size_and_sha256(folder) == (12, "1723bcaa430bb191c2b4dc73a964df82f6f010e552797262217531f3953b5476")
    (folder / "sub" / "model.bin").rename(folder / "model.bin")
    assert folder_size_and_sha256(folder)[1] != "1723bcaa430bb191c2b4dc73a964df82f6f010e552797262217531f3953b5476"
