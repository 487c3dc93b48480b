"""The generation routes against a real server on the tiny model: txt2img, img2img, inpaint, png-info,
the full A1111 default payload, 50 concurrent jobs with progress, interrupt and a failing model."""

from __future__ import annotations

import base64
import io
import json
import threading
import time

import requests
from PIL import Image

from tests.api.defaults import A1111_IMG2IMG_DEFAULTS, A1111_TXT2IMG_DEFAULTS

SMALL = {"width": 64, "height": 64, "steps": 2}


def b64_png(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def decode(s: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(s)))
    image.load()
    return image


def saved_files(server) -> list:
    return sorted(p for p in server.stack.outputs.rglob("*") if p.is_file() and not p.name.startswith("."))


def test_txt2img_batch_seeds_in_png_and_info(api_server):
    before = saved_files(api_server)
    r = requests.post(api_server.api("txt2img"), json={
        "prompt": "a red fox", "negative_prompt": "blurry", "seed": 1234, "batch_size": 2,
        "sampler_name": "Euler a", **SMALL}, timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"images", "parameters", "info"}
    info = json.loads(body["info"])
    assert info["all_seeds"] == [1234, 1235] and info["seed"] == 1234
    assert info["all_prompts"] == ["a red fox"] * 2 and info["sampler_name"] == "Euler a"
    assert info["sd_model_name"] and len(info["sd_model_hash"]) == 10
    images = [decode(s) for s in body["images"]]
    assert [im.format for im in images] == ["PNG", "PNG"] and images[0].size == (64, 64)
    texts = [im.info["parameters"] for im in images]
    assert "Seed: 1234," in texts[0] and "Seed: 1235," in texts[1]
    assert texts[0].startswith("a red fox\nNegative prompt: blurry\n")
    assert body["parameters"]["prompt"] == "a red fox" and body["parameters"]["batch_size"] == 2
    # A1111's API saves only when asked.
    assert saved_files(api_server) == before


def test_save_images_true_writes_files(api_server):
    before = set(saved_files(api_server))
    r = requests.post(api_server.api("txt2img"), json={"prompt": "keep me", "seed": 77, "save_images": True,
                                                       "n_iter": 2, **SMALL}, timeout=60)
    assert r.status_code == 200, r.text
    new = sorted(set(saved_files(api_server)) - before)
    assert [p.name.split("-", 1)[1] for p in new] == ["77.png", "78.png"]
    assert "txt2img-images" in str(new[0])
    assert "keep me" in Image.open(new[0]).info["parameters"]


def test_img2img_and_inpaint(api_server):
    init = Image.new("RGB", (64, 64), (30, 140, 200))
    r = requests.post(api_server.api("img2img"), json={
        "init_images": ["data:image/png;base64," + b64_png(init)], "prompt": "a lake", "seed": 50,
        "batch_size": 2, "denoising_strength": 0.6, **SMALL}, timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    info = json.loads(body["info"])
    assert info["all_seeds"] == [50, 51] and info["denoising_strength"] == 0.6
    texts = [decode(s).info["parameters"] for s in body["images"]]
    assert "Seed: 50," in texts[0] and "Seed: 51," in texts[1] and "Denoising strength: 0.6" in texts[0]
    assert body["parameters"]["init_images"] is None  # as A1111 without include_init_images

    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (0, 0, 32, 64))  # repaint the left half
    r = requests.post(api_server.api("img2img"), json={
        "init_images": [b64_png(init)], "mask": b64_png(mask), "prompt": "a boat", "seed": 90, "batch_size": 2,
        "mask_blur": 4, "inpainting_fill": 1, "inpaint_full_res": False, "denoising_strength": 1.0, **SMALL},
        timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    assert json.loads(body["info"])["all_seeds"] == [90, 91]
    images = [decode(s) for s in body["images"]]
    assert "Seed: 91," in images[1].info["parameters"] and "Mask blur: 4" in images[1].info["parameters"]
    kept = images[0].convert("RGB").getpixel((60, 30))
    assert all(abs(a - b) <= 2 for a, b in zip(kept, (30, 140, 200))), kept  # outside the mask: the original
    assert images[0].convert("RGB").getpixel((5, 30)) != (30, 140, 200)  # inside: generated


def test_png_info_parses_back_to_the_request(api_server):
    req = {"prompt": "a castle, (dramatic:1.2)", "negative_prompt": "fog", "seed": 4321, "steps": 2,
           "cfg_scale": 6.5, "width": 64, "height": 128, "sampler_name": "DPM++ 2M", "scheduler": "Karras"}
    r = requests.post(api_server.api("txt2img"), json=req, timeout=60)
    assert r.status_code == 200, r.text
    image_b64 = r.json()["images"][0]
    r = requests.post(api_server.api("png-info"), json={"image": "data:image/png;base64," + image_b64}, timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    p = body["parameters"]
    assert body["info"].startswith("a castle, (dramatic:1.2)\nNegative prompt: fog\n")
    assert (p["Prompt"], p["Negative prompt"], str(p["Seed"]), str(p["Steps"])) == \
        (req["prompt"], "fog", "4321", "2")
    assert (str(p["Size-1"]), str(p["Size-2"]), float(p["CFG scale"])) == ("64", "128", 6.5)
    assert (p["Sampler"], p["Schedule type"]) == ("DPM++ 2M", "Karras")
    plain = requests.post(api_server.api("png-info"), json={"image": b64_png(Image.new("RGB", (8, 8)))}, timeout=30)
    assert plain.status_code == 200 and plain.json()["info"] == "" and plain.json()["parameters"] == {}


def test_full_a1111_default_payloads_are_accepted(api_server):
    payload = {**A1111_TXT2IMG_DEFAULTS, "prompt": "defaults", "seed": 5, **SMALL}
    r = requests.post(api_server.api("txt2img"), json=payload, timeout=60)
    assert r.status_code == 200, r.text
    assert json.loads(r.json()["info"])["all_seeds"] == [5]
    payload = {**A1111_IMG2IMG_DEFAULTS, "prompt": "defaults", "seed": 6, **SMALL,
               "init_images": [b64_png(Image.new("RGB", (64, 64), (90, 90, 90)))]}
    r = requests.post(api_server.api("img2img"), json=payload, timeout=60)
    assert r.status_code == 200, r.text
    assert json.loads(r.json()["info"])["all_seeds"] == [6]


def test_fifty_concurrent_jobs_and_progress_reports_the_queue(api_server):
    results: dict[tuple[int, int], requests.Response] = {}
    job_counts: list[int] = []
    stop = threading.Event()

    def client(t: int) -> None:
        with requests.Session() as s:
            for j in range(5):
                seed = 10_000 + t * 100 + j
                results[(t, j)] = s.post(api_server.api("txt2img"), json={
                    "prompt": f"client {t} job {j}", "seed": seed, "steps": 1, "cfg_scale": 1, "width": 64,
                    "height": 64},
                    timeout=120)

    def poll() -> None:
        with requests.Session() as s:
            while not stop.is_set():
                job_counts.append(s.get(api_server.api("progress"), timeout=30).json()["state"]["job_count"])
                time.sleep(0.02)

    poller = threading.Thread(target=poll)
    poller.start()
    threads = [threading.Thread(target=client, args=(t,)) for t in range(10)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(180)
    stop.set()
    poller.join(30)
    assert len(results) == 50
    for (t, j), r in results.items():
        assert r.status_code == 200, r.text
        text = decode(r.json()["images"][0]).info["parameters"]
        assert text.startswith(f"client {t} job {j}\n") and f"Seed: {10_000 + t * 100 + j}," in text
    assert max(job_counts) > 1, job_counts
    idle = requests.get(api_server.api("progress"), timeout=30).json()
    assert idle["state"]["job_count"] == 0 and idle["progress"] == 0


def test_interrupt_ends_a_long_job_within_one_step(api_server):
    holder: dict[str, requests.Response] = {}
    long_job = threading.Thread(target=lambda: holder.setdefault("r", requests.post(api_server.api("txt2img"), json={
        "prompt": "a very long job", "seed": 3, "steps": 50, "width": 128, "height": 128}, timeout=120)))
    long_job.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        progress = requests.get(api_server.api("progress"), timeout=30).json()
        if progress["state"]["sampling_step"] >= 2:
            break
        time.sleep(0.02)
    assert progress["state"]["sampling_steps"] == 50 and 0 < progress["progress"] < 1
    assert progress["eta_relative"] > 0 and progress["textinfo"].startswith("Step ")
    job = api_server.stack.queue.active("api")[0]
    assert job.params.prompt == "a very long job"
    assert requests.post(api_server.api("interrupt"), timeout=30).status_code == 200
    step_when_interrupted = job.progress().step  # the interrupt is set by now
    long_job.join(60)
    r = holder["r"]
    assert r.status_code == 200, r.text
    assert json.loads(r.json()["info"])["interrupted"] is True
    assert job.progress().step <= step_when_interrupted + 1 < 50
    assert job.state.value == "interrupted"
    after = requests.post(api_server.api("txt2img"), json={"prompt": "next", "seed": 8, **SMALL}, timeout=60)
    assert after.status_code == 200 and json.loads(after.json()["info"])["interrupted"] is False


def test_failure_inside_the_job_is_reported_and_the_next_job_runs(api_server):
    r = requests.post(api_server.api("txt2img"), json={
        "prompt": "x", "override_settings": {"sd_model_checkpoint": "zz-broken.safetensors"}, **SMALL}, timeout=60)
    assert r.status_code in (400, 500), r.text
    body = r.json()
    assert "zz-broken.safetensors" in body["detail"] and body["error"] in ("BrokenModel", "UnrecognizedModel")
    ok = requests.post(api_server.api("txt2img"), json={"prompt": "fine again", "seed": 9, **SMALL}, timeout=60)
    assert ok.status_code == 200, ok.text
