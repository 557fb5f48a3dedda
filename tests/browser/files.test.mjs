// Attachments in a real Chromium: one person pastes an image and attaches a PDF, the other
// sees the thumbnail, opens it full size and downloads the PDF, and a reload shows both.

import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { openRoom, person, repoRoot, setUp, signUp, until } from './harness.mjs';

// BANTER_SCREENSHOTS=1 refreshes docs/screenshots; otherwise the pictures go to a temp dir.
const shots = process.env.BANTER_SCREENSHOTS
  ? path.join(repoRoot, 'docs/screenshots')
  : path.join(os.tmpdir(), 'banter-screenshots');

const PDF = Buffer.from('%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n% the plan for Monday\n%%EOF\n');

/** Pastes a 640 × 480 PNG drawn in the page into the message box, as a screenshot paste does. */
async function pasteImage(page) {
  await page.getByLabel('Message', { exact: true }).focus();
  await page.evaluate(async () => {
    const canvas = new OffscreenCanvas(640, 480);
    const g = canvas.getContext('2d');
    g.fillStyle = '#3456d1';
    g.fillRect(0, 0, 640, 480);
    g.fillStyle = '#f5c542';
    g.fillRect(80, 60, 300, 200);
    const blob = await canvas.convertToBlob({ type: 'image/png' });
    const data = new DataTransfer();
    data.items.add(new File([blob], 'image.png', { type: 'image/png' }));
    document.getElementById('message-input')
      .dispatchEvent(new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }));
  });
}

/** Waits until every file in the composer's tray is uploaded (no progress bar left). */
async function uploaded(page, n) {
  await until(`${n} uploads to finish`, async () => {
    const items = page.locator('#attach-tray .attach-item');
    if ((await items.count()) !== n) return false;
    if ((await page.locator('#attach-tray .has-error').count()) > 0) {
      throw new Error(await page.locator('#attach-tray').innerText());
    }
    return (await page.locator('#attach-tray progress:not([hidden])').count()) === 0;
  });
}

/** The shown image's natural width, once it has loaded from an object URL. */
async function loadedWidth(img) {
  return until('the image to load', async () => img.evaluate(
    (node) => node.complete && node.src.startsWith('blob:') && node.naturalWidth,
  ));
}

test('a pasted image and an attached PDF reach the room; one opens full size, the other downloads', async (t) => {
  const { server, browser } = await setUp(t);
  const alice = await person(browser);
  const bob = await person(browser);
  await signUp(alice.page, server.base, 'alice');
  await signUp(bob.page, server.base, 'bob');
  await openRoom(alice.page, 'team');
  await openRoom(bob.page, 'team');

  await pasteImage(alice.page);
  await alice.page.setInputFiles('#attach-input', { name: 'plan.pdf', mimeType: 'application/pdf', buffer: PDF });
  await uploaded(alice.page, 2);
  const box = alice.page.getByLabel('Message', { exact: true });
  await box.fill('the whiteboard, and the plan');
  await box.press('Enter');
  assert.equal(await alice.page.locator('#attach-tray .attach-item').count(), 0, 'the tray empties on send');

  const msg = bob.page.locator('#message-list > li.msg', { hasText: 'the whiteboard, and the plan' });
  const thumb = msg.locator('.attachment-image img');
  await until('bob to see the thumbnail', () => thumb.count());
  assert.equal(await loadedWidth(thumb), 400, 'a 640-wide image shows as its 400-wide thumbnail');
  assert.equal(await thumb.getAttribute('alt'), 'image.png');
  const card = msg.locator('.attachment-file');
  assert.match(await card.innerText(), /plan\.pdf/);

  // Full size, in the viewer.
  await msg.getByRole('button', { name: 'image.png: open full size' }).click();
  const viewer = bob.page.locator('#viewer');
  await until('the viewer to open', () => viewer.evaluate((d) => d.open));
  assert.equal(await loadedWidth(bob.page.locator('#viewer-image')), 640);
  mkdirSync(shots, { recursive: true });
  await bob.page.screenshot({ path: path.join(shots, 'attachments-viewer.png') });
  await bob.page.keyboard.press('Escape');
  await until('the viewer to close', async () => !(await viewer.evaluate((d) => d.open)));

  // The PDF downloads with its name and its bytes.
  const [download] = await Promise.all([
    bob.page.waitForEvent('download'),
    card.getByRole('button', { name: 'Download plan.pdf' }).click(),
  ]);
  assert.equal(download.suggestedFilename(), 'plan.pdf');
  assert.deepEqual(readFileSync(await download.path()), PDF);
  await bob.page.screenshot({ path: path.join(shots, 'attachments.png') });

  // A reload shows both again, from history.
  await bob.page.reload();
  const again = bob.page.locator('#message-list > li.msg', { hasText: 'the whiteboard, and the plan' });
  await until('the message after the reload', () => again.count());
  assert.equal(await loadedWidth(again.locator('.attachment-image img')), 400);
  assert.match(await again.locator('.attachment-file').innerText(), /plan\.pdf/);
});

test('a file dropped on the conversation is sent without words, and a failed upload says why', async (t) => {
  const { server, browser } = await setUp(t, { env: { BANTER_MAX_UPLOAD_BYTES: '1000' } });
  const alice = await person(browser);
  await signUp(alice.page, server.base, 'alice');
  await openRoom(alice.page, 'team');
  await alice.page.evaluate(() => {
    const data = new DataTransfer();
    data.items.add(new File(['just notes'], 'notes.txt', { type: 'text/plain' }));
    const main = document.getElementById('messages');
    for (const type of ['dragenter', 'dragover', 'drop']) {
      main.dispatchEvent(new DragEvent(type, { dataTransfer: data, bubbles: true, cancelable: true }));
    }
  });
  await uploaded(alice.page, 1);
  await alice.page.getByLabel('Message', { exact: true }).press('Enter');
  const sent = alice.page.locator('#message-list > li.msg', {
    has: alice.page.locator('.attachment-file', { hasText: 'notes.txt' }),
  });
  await until('the file to be sent', () => sent.count());
  await until('the message to be acked', async () => (await sent.getAttribute('data-state')) === 'sent');

  await alice.page.setInputFiles('#attach-input', { name: 'big.bin', mimeType: 'application/octet-stream', buffer: Buffer.alloc(5000) });
  await until('the refusal to show', async () =>
    /larger than 1000 bytes/.test(await alice.page.locator('#attach-tray .has-error').innerText()));
  await alice.page.getByRole('button', { name: 'Remove big.bin' }).click();
  assert.equal(await alice.page.locator('#attach-tray .attach-item').count(), 0);
});
