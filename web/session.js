// The signed-in sessions of this browser, shared by the chat (app.js) and the admin page
// (admin.js). (Filled in by the refactor that moves them here.)
export {};
